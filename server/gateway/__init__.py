"""The gateway: one OpenAI-compatible base URL in front of the vLLM backends and the translator.

``/v1/chat/completions`` is routed by ``model`` to the vLLM process serving it, streaming (SSE)
passed through chunk by chunk; ``/v1/models`` lists every served model; the translation routes
are mounted from :mod:`babelcap.server.translation.api`; ``/health`` reports each backend;
``/metrics`` is Prometheus. An optional API key guards everything but ``/health``; bodies are
size-limited; media URLs that are not ``data:`` URLs are refused unless the profile allows their
host.

By concern: :mod:`.routing` builds the app and its routes, :mod:`.guard` checks each request
(API key, body limit, request metrics), :mod:`.relay` relays chat completions, :mod:`.metrics`
keeps the Prometheus registry, and :mod:`.config` holds what the gateway enforces.
"""

from babelcap.server.backends import Backend
from babelcap.server.gateway.config import GatewayConfig
from babelcap.server.gateway.routing import create_gateway

__all__ = ["Backend", "GatewayConfig", "create_gateway"]
