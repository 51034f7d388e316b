"""Talk to babelcap (or plain vLLM) servers: one shared async client, bounded, retried, streamed.

- One ``httpx.AsyncClient`` per run; one semaphore caps requests in flight across all servers.
- Several ``--server`` URLs are balanced by least outstanding requests; a server that just
  failed sits out its backoff.
- Chat completions are streamed, so time to first token (TTFT) is measured; token counts come
  from the server's own usage report.
- A request that times out on every attempt raises :class:`RequestTimeoutError` (its record's
  error kind is ``timeout``); other failures raise :class:`RequestFailedError` (``request``).
- :func:`retry_delay` is the one retry policy: connection errors, 408, 409, 429 and 5xx are
  retried with jittered exponential backoff (0.5 s to 8 s) honouring ``Retry-After``; other 4xx
  never are. "Server unavailable" failures (connection refused, 502/503/504) are retried until
  no server has answered for ``unavailable_timeout_s``; then :class:`ServerUnavailableError`
  tells the runner to stop cleanly.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from babelcap.core import defaults
from babelcap.core.errors import RequestFailedError, RequestTimeoutError, ServerUnavailableError

__all__ = [
    "Completion",
    "RetryPolicy",
    "ServerPool",
    "by_role",
    "media_hints",
    "retry_delay",
    "role_of",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_UNAVAILABLE = {502, 503, 504}
_RETRIED = {408, 409, 429, 500} | _UNAVAILABLE


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried."""

    max_retries: int = defaults.MAX_RETRIES
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    unavailable_timeout_s: float = defaults.UNAVAILABLE_TIMEOUT_S


@dataclass(frozen=True)
class Completion:
    """One chat completion and how it went."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    latency_s: float
    finish_reason: str | None
    server: str
    attempts: int
    chunk_times_s: tuple[float, ...] = ()
    """Arrival time (from the request's start) of every streamed chunk that carried text."""


def retry_delay(
    attempt: int, retry_after: str | None, policy: RetryPolicy, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): the server's ``Retry-After``
    (seconds or an HTTP date, capped at 60 s) when given, else jittered exponential backoff."""
    if retry_after:
        try:
            return min(60.0, max(0.0, float(retry_after)))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
                return min(60.0, max(0.0, when.timestamp() - time.time()))
            except (TypeError, ValueError):
                pass  # unparseable: fall back to backoff
    base = min(policy.max_delay_s, policy.initial_delay_s * 2**attempt)
    jitter: float = (rng or random.Random()).random()
    return float(base * (1 - 0.25 * jitter))


def role_of(entry: dict[str, Any]) -> str | None:
    """The role a babelcap server lists for a ``/v1/models`` entry (``image``, ``video``,
    ``translation``); None for a plain vLLM server's."""
    role = (entry.get("babelcap") or {}).get("role")
    return str(role) if role is not None else None


def by_role(listed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{role: the first ``/v1/models`` entry listed with it}."""
    found: dict[str, dict[str, Any]] = {}
    for entry in listed:
        role = role_of(entry)
        if role is not None:
            found.setdefault(role, entry)
    return found


def media_hints(entry: dict[str, Any] | None) -> dict[str, int]:
    """How the model listed as ``entry`` wants its media (``tile_size``, ``frames``, ...);
    {} when it says nothing."""
    hints: dict[str, int] = ((entry or {}).get("babelcap") or {}).get("media") or {}
    return hints


class _Unavailable(Exception):
    def __init__(self, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _message(response: httpx.Response, body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error["message"] if isinstance(error, dict) else error)
    except (ValueError, KeyError, TypeError):
        return body[:300].decode("utf-8", "replace")


class ServerPool:
    """The servers of a run, one shared HTTP client, and the global concurrency limit."""

    def __init__(
        self,
        urls: list[str],
        *,
        api_key: str | None = None,
        concurrency: int = 16,
        request_timeout_s: float = defaults.REQUEST_TIMEOUT_S,
        policy: RetryPolicy | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one server URL is needed")
        self.urls = [url.rstrip("/").removesuffix("/v1") for url in urls]
        self.request_timeout_s = request_timeout_s
        self.policy = policy or RetryPolicy()
        self.outstanding = dict.fromkeys(self.urls, 0)
        self.resting_until = dict.fromkeys(self.urls, 0.0)
        self.failures = dict.fromkeys(self.urls, 0)  # consecutive, per server
        self.last_ok = time.monotonic()
        self.limit = asyncio.Semaphore(concurrency)
        self.retries = 0
        self._turn = 0
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(request_timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=64),
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    def _pick(self) -> str:
        now = time.monotonic()
        awake = [u for u in self.urls if self.resting_until[u] <= now] or self.urls
        self._turn += 1
        # Least outstanding; ties rotate so that idle servers share the work.
        count = len(self.urls)
        return min(
            awake, key=lambda u: (self.outstanding[u], (self.urls.index(u) + self._turn) % count)
        )

    async def _call(self, what: str, operation: Callable[[str], Awaitable[T]]) -> tuple[T, int]:
        """Run ``operation(base_url)`` with the retry policy; returns its result and attempts."""
        started = time.monotonic()
        attempt = 0
        while True:
            url = self.urls[0]
            try:
                async with self.limit:
                    url = self._pick()  # after the wait: the counts are current then
                    self.outstanding[url] += 1
                    try:
                        result = await operation(url)
                    finally:
                        self.outstanding[url] -= 1
                self.last_ok = time.monotonic()
                self.failures[url] = 0
                return result, attempt + 1
            except (_Unavailable, _Retryable, httpx.TransportError) as error:
                unavailable = not isinstance(error, _Retryable | httpx.TimeoutException) or (
                    isinstance(error, httpx.ConnectTimeout)
                )
                retry_after = getattr(error, "retry_after", None)
                delay = retry_delay(min(attempt, 10), retry_after, self.policy)
                self.failures[url] += 1
                rest = retry_delay(min(self.failures[url], 10), retry_after, self.policy)
                self.resting_until[url] = time.monotonic() + rest
                silent_for = time.monotonic() - max(self.last_ok, started)
                if unavailable and silent_for + delay > self.policy.unavailable_timeout_s:
                    raise ServerUnavailableError(
                        f"no server answered {what} for {silent_for:.0f} s "
                        f"({', '.join(self.urls)}; last error: {error or type(error).__name__}); "
                        "start 'babelcap serve' or check --server, then rerun with --resume"
                    ) from error
                if not unavailable and attempt >= self.policy.max_retries:
                    if isinstance(error, httpx.TimeoutException):
                        raise RequestTimeoutError(
                            f"{what} got no complete answer within {self.request_timeout_s:g} s, "
                            f"{attempt + 1} attempts ({type(error).__name__}); raise "
                            "--request-timeout-s or lower --concurrency"
                        ) from error
                    raise RequestFailedError(
                        f"{what} failed after {attempt + 1} attempts: {error}",
                        status_code=getattr(error, "status_code", 0),
                    ) from error
                log.debug("%s: retry %d in %.1f s after %s", what, attempt + 1, delay, error)
                self.retries += 1
                attempt += 1
                await asyncio.sleep(delay)

    async def _post(self, url: str, path: str, body: dict[str, Any]) -> httpx.Response:
        response = await self.client.post(f"{url}{path}", json=body)
        if response.status_code != 200:
            self._raise(response, await response.aread(), f"POST {path}")
        return response

    @staticmethod
    def _raise(response: httpx.Response, body: bytes, what: str) -> None:
        status = response.status_code
        message = f"{what} answered {status}: {_message(response, body)}"
        retry_after = response.headers.get("retry-after")
        if status in _UNAVAILABLE:
            raise _Unavailable(message, retry_after)
        if status in _RETRIED:
            raise _Retryable(message, retry_after)
        raise RequestFailedError(message, status_code=status, body=body.decode("utf-8", "replace"))

    async def models(self) -> list[dict[str, Any]]:
        """``GET /v1/models`` from every server, merged by id."""
        merged: dict[str, dict[str, Any]] = {}
        for url in self.urls:

            async def get(_: str, url: str = url) -> list[dict[str, Any]]:
                response = await self.client.get(f"{url}/v1/models")
                if response.status_code != 200:
                    self._raise(response, response.content, "GET /v1/models")
                data: list[dict[str, Any]] = response.json()["data"]
                return data

            found, _ = await self._call(f"GET {url}/v1/models", get)
            merged |= {model["id"]: model for model in found}
        return list(merged.values())

    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float
    ) -> Completion:
        """A streamed chat completion; TTFT is the time to the first content token."""
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

        async def stream(url: str) -> Completion:
            started = time.perf_counter()
            ttft: float | None = None
            arrivals: list[float] = []
            parts: list[str] = []
            usage: dict[str, int] = {}
            finish = None
            async with self.client.stream(
                "POST", f"{url}/v1/chat/completions", json=body
            ) as response:
                if response.status_code != 200:
                    self._raise(response, await response.aread(), f"{model} chat completion")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        detail = _message(response, data.encode())
                        raise _Retryable(f"{model} failed mid-stream: {detail}")
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            now = time.perf_counter() - started
                            ttft = now if ttft is None else ttft
                            arrivals.append(now)
                            parts.append(text)
                        finish = choice.get("finish_reason") or finish
                    usage = chunk.get("usage") or usage
            latency = time.perf_counter() - started
            return Completion(
                text="".join(parts),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                ttft_s=ttft if ttft is not None else latency,
                chunk_times_s=tuple(arrivals),
                latency_s=latency,
                finish_reason=finish,
                server=url,
                attempts=0,
            )

        completion, attempts = await self._call(f"{model} chat completion", stream)
        return Completion(**{**completion.__dict__, "attempts": attempts})

    async def translate(
        self, texts: list[str], targets: list[str], source: str = "eng_Latn"
    ) -> dict[str, list[str]]:
        """``POST /v1/translations``: {target code: outputs in input order}."""
        body = {"text": texts, "source_language": source, "target_languages": targets}

        async def post(url: str) -> dict[str, list[str]]:
            response = await self._post(url, "/v1/translations", body)
            return {t["target_language"]: t["texts"] for t in response.json()["translations"]}

        result, _ = await self._call("translation", post)
        return result
