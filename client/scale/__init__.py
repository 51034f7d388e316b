"""``babelcap caption --engine ray``: the same run as a Ray Data pipeline (imported only then)."""
