"""babelcap: server package."""
