"""babelcap: caption images and videos in bulk, in any of the 200 FLORES-200 languages, at the
speed of a vLLM server.

The sub-packages follow the pipeline: :mod:`babelcap.core` (errors, defaults, artifact
locations), :mod:`babelcap.prompts`, :mod:`babelcap.converters`, :mod:`babelcap.server`,
:mod:`babelcap.client`, :mod:`babelcap.benchmarks`, and :mod:`babelcap.cli` on top.
``docs/architecture.md`` says which may import which.
"""

from babelcap.core.errors import BabelcapError
from babelcap.core.version import __version__

__all__ = ["BabelcapError", "__version__"]
