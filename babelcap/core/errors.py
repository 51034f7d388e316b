"""babelcap's exception hierarchy: one base, one subclass per kind of failure.

Every message says what went wrong, for which input, and what to do about it. Each class names
the ``kind`` a result record stores for it and the exit status the command line ends with.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "EXIT_BACKEND",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SETTINGS",
    "EXIT_UNAVAILABLE",
    "BabelcapError",
    "BackendStartError",
    "ConfigurationError",
    "DecodeTimeoutError",
    "MediaDecodeError",
    "RequestFailedError",
    "RequestTimeoutError",
    "ServerUnavailableError",
    "TranslationError",
]

EXIT_OK = 0
#: Some of the work failed (each failure is in its record) or a request was refused.
EXIT_FAILED = 1
#: Bad settings, arguments, profile or input list: nothing was done.
EXIT_SETTINGS = 2
#: No server answered: rerun (with --resume) once one does.
EXIT_UNAVAILABLE = 3
#: A model server could not be started.
EXIT_BACKEND = 4
EXIT_INTERRUPTED = 130


class BabelcapError(Exception):
    """Base of every error babelcap raises on purpose."""

    kind: ClassVar[str] = "error"
    """What a result record calls this failure."""
    exit_code: ClassVar[int] = EXIT_FAILED
    """The exit status of a command that stops on it."""


class ConfigurationError(BabelcapError):
    """A setting, profile, argument or input list is invalid."""

    kind = "config"
    exit_code = EXIT_SETTINGS


class BackendStartError(BabelcapError):
    """A model server (vLLM, or babelcap serve itself) could not be started or did not become
    ready."""

    kind = "backend"
    exit_code = EXIT_BACKEND


class ServerUnavailableError(BabelcapError):
    """No server answered at the given URL."""

    kind = "unavailable"
    exit_code = EXIT_UNAVAILABLE


class RequestFailedError(BabelcapError):
    """A server answered with an error status."""

    kind = "request"

    def __init__(self, message: str, *, status_code: int, body: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class RequestTimeoutError(RequestFailedError):
    """A request got no complete answer within its time limit, every retry included."""

    kind = "timeout"

    def __init__(self, message: str, *, body: str = "") -> None:
        super().__init__(message, status_code=408, body=body)


class MediaDecodeError(BabelcapError):
    """An image or video could not be decoded."""

    kind = "decode"


class DecodeTimeoutError(MediaDecodeError):
    """Decoding one asset passed its time limit and was stopped."""

    kind = "timeout"


class TranslationError(BabelcapError):
    """Translation failed (bad language code, model problem)."""

    kind = "translation"
