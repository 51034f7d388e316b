"""babelcap: benchmarks package."""
