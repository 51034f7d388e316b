"""The installed babelcap version, read once from the package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("babelcap")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
