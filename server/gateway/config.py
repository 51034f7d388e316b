"""What the gateway enforces: API key, body limit, media hosts, request fields, media limits and
the upstream time limit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from babelcap.core import defaults
from babelcap.server.translation.limits import TranslationLimits

if TYPE_CHECKING:
    from babelcap.server.profiles import MediaLimits, Profile

__all__ = ["BODY_LIMIT_HINT", "GatewayConfig"]

#: What the 413 answer tells a client to do.
BODY_LIMIT_HINT = "send smaller or fewer media per request"


class GatewayConfig:
    """Settings the gateway enforces.

    ``max_body_bytes`` bounds chat bodies (media inline), ``max_translation_body_bytes`` the
    translation routes' (text); ``translation_limits`` the characters and sentences x languages
    of one translation request. ``allowed_request_fields``: fields refused by default
    (``validation.REFUSED_UNLESS_ALLOWED``) that are relayed anyway; ``media_limits``: per
    model id, the profile's media limits (a limit left unset, or a model not named, is derived
    from the model's media hints).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_body_bytes: int = defaults.CHAT_MAX_BODY_BYTES,
        max_translation_body_bytes: int = defaults.TRANSLATION_MAX_BODY_BYTES,
        translation_limits: TranslationLimits | None = None,
        allowed_media_domains: list[str] | None = None,
        request_timeout_s: float = defaults.REQUEST_TIMEOUT_S,
        allowed_request_fields: Iterable[str] = (),
        media_limits: dict[str, MediaLimits] | None = None,
    ) -> None:
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.max_translation_body_bytes = max_translation_body_bytes
        self.translation_limits = translation_limits or TranslationLimits()
        self.allowed_media_domains = allowed_media_domains or []
        self.request_timeout_s = request_timeout_s
        self.allowed_request_fields = frozenset(allowed_request_fields)
        self.media_limits = media_limits or {}

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        api_key: str | None = None,
        max_body_bytes: int = defaults.CHAT_MAX_BODY_BYTES,
        max_translation_body_bytes: int = defaults.TRANSLATION_MAX_BODY_BYTES,
        translation_limits: TranslationLimits | None = None,
    ) -> GatewayConfig:
        """What ``profile`` lets requests do: media hosts, request fields, media limits; and
        the body limits serve was given."""
        return cls(
            api_key=api_key,
            max_body_bytes=max_body_bytes,
            max_translation_body_bytes=max_translation_body_bytes,
            translation_limits=translation_limits,
            allowed_media_domains=profile.allowed_media_domains,
            allowed_request_fields=profile.allowed_request_fields,
            media_limits={m.backend.name: m.limits for m in profile.models},
        )
