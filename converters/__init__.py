"""babelcap: converters package."""
