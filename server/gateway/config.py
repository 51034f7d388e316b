"""What the gateway enforces: API key, body limit, media hosts and the upstream time limit."""

from __future__ import annotations

from babelcap.core import defaults

__all__ = ["BODY_LIMIT_HINT", "GatewayConfig"]

#: What the 413 answer tells a client to do.
BODY_LIMIT_HINT = "send smaller or fewer media per request"


class GatewayConfig:
    """Settings the gateway enforces."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_body_bytes: int = 64 * 2**20,
        allowed_media_domains: list[str] | None = None,
        request_timeout_s: float = defaults.REQUEST_TIMEOUT_S,
    ) -> None:
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.allowed_media_domains = allowed_media_domains or []
        self.request_timeout_s = request_timeout_s
