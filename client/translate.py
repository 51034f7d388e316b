"""Client side of the translation API: ``POST /v1/translations`` on a babelcap server."""

from __future__ import annotations

import os

import httpx

from client.errors import RequestFailedError, ServerUnavailableError

__all__ = ["translate_remote"]


def translate_remote(
    server: str,
    texts: list[str],
    targets: list[str],
    source: str = "eng_Latn",
    api_key: str | None = None,
    timeout: float = 300.0,
) -> dict[str, list[str]]:
    """Translate ``texts`` on the server at ``server``; returns {target code: outputs}."""
    base = server.rstrip("/").removesuffix("/v1")
    key = api_key or os.environ.get("BABELCAP_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"text": texts, "source_language": source, "target_languages": targets}
    try:
        response = httpx.post(
            f"{base}/v1/translations", json=body, headers=headers, timeout=timeout
        )
    except httpx.TransportError as error:
        raise ServerUnavailableError(
            f"no babelcap server answered at {base} ({error}); start one or pass --server URL, "
            "or translate locally with --model DIR"
        ) from error
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        raise RequestFailedError(
            f"{base} answered {response.status_code}: {message}",
            status_code=response.status_code,
            body=response.text,
        )
    return {t["target_language"]: t["texts"] for t in response.json()["translations"]}
