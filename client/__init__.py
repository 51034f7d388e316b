"""babelcap: client package."""
