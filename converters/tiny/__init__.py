"""babelcap: converters/tiny package."""
