"""babelcap's core: errors, defaults, artifact locations and version.

Every other package may import this one; it imports nothing of theirs (a contract test holds it).
"""

from babelcap.core import defaults
from babelcap.core.artifacts import STAND_INS, stand_in
from babelcap.core.errors import (
    BabelcapError,
    BackendStartError,
    ConfigurationError,
    DecodeTimeoutError,
    MediaDecodeError,
    RequestFailedError,
    RequestTimeoutError,
    ServerUnavailableError,
    TranslationError,
)
from babelcap.core.version import __version__

__all__ = [
    "STAND_INS",
    "BabelcapError",
    "BackendStartError",
    "ConfigurationError",
    "DecodeTimeoutError",
    "MediaDecodeError",
    "RequestFailedError",
    "RequestTimeoutError",
    "ServerUnavailableError",
    "TranslationError",
    "__version__",
    "defaults",
    "stand_in",
]
