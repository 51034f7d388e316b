"""babelcap's exception hierarchy: one base, one subclass per kind of failure.

Every message says what went wrong, for which input, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "BabelcapError",
    "BackendStartError",
    "ConfigurationError",
    "MediaDecodeError",
    "RequestFailedError",
    "ServerUnavailableError",
    "TranslationError",
]


class BabelcapError(Exception):
    """Base of every error babelcap raises on purpose."""


class ConfigurationError(BabelcapError):
    """A setting, profile or argument is invalid."""


class BackendStartError(BabelcapError):
    """A model server (vLLM) could not be started or did not become ready."""


class ServerUnavailableError(BabelcapError):
    """No server answered at the given URL."""


class RequestFailedError(BabelcapError):
    """A server answered with an error status."""

    def __init__(self, message: str, *, status_code: int, body: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class MediaDecodeError(BabelcapError):
    """An image or video could not be decoded."""


class TranslationError(BabelcapError):
    """Translation failed (bad language code, model problem)."""
