"""Client side of the translation API: ``POST /v1/translations`` on a babelcap server."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from babelcap.client.requests import RetryPolicy, ServerPool
from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError, RequestFailedError, ServerUnavailableError
from babelcap.core.settings import POSITIONAL, exclusive, flag, split_list

__all__ = ["TranslateSettings", "TranslationBatcher", "translate_remote"]


class TranslateSettings(BaseSettings):
    """``babelcap translate`` (also as ``BABELCAP_<NAME>``, as for caption: the same server and
    ``BABELCAP_API_KEY``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_", extra="forbid")

    text: str = Field(
        description="the text, or - to read standard input", json_schema_extra=POSITIONAL
    )
    to: Annotated[list[str], NoDecode] = Field(description="comma-separated target language codes")
    source: str = Field("eng_Latn", description="source language", json_schema_extra=flag("--from"))
    server: str = Field(
        defaults.SERVER_URL, description="babelcap server base URL",
        json_schema_extra=exclusive("where"),
    )  # fmt: skip
    model: Path | None = Field(
        None, description="translate locally with this CTranslate2 NLLB folder",
        json_schema_extra=exclusive("where"),
    )  # fmt: skip
    api_key: SecretStr | None = Field(None, description="server API key")
    as_json: bool = Field(
        False, description="print JSON: {code: text}", json_schema_extra=flag("--json")
    )

    @field_validator("to", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return split_list(value)


_Waiter = asyncio.Future[dict[str, list[str]]]


def translate_remote(
    server: str,
    texts: list[str],
    targets: list[str],
    source: str = "eng_Latn",
    api_key: str | None = None,
    timeout: float = 300.0,
) -> dict[str, list[str]]:
    """Translate ``texts`` on the server at ``server``; returns {target code: outputs}.

    One :class:`ServerPool` request, so the CLI gets the caption client's retries (429, 5xx)
    and error messages; a server that does not answer for 5 s is reported at once."""
    policy = RetryPolicy(max_retries=3, unavailable_timeout_s=5.0)

    async def run() -> dict[str, list[str]]:
        pool = ServerPool([server], api_key=api_key, concurrency=1, request_timeout_s=timeout,
                          policy=policy)  # fmt: skip
        try:
            return await pool.translate(texts, targets, source)
        finally:
            await pool.aclose()

    try:
        return asyncio.run(run())
    except ServerUnavailableError as error:
        base = server.rstrip("/").removesuffix("/v1")
        raise ServerUnavailableError(
            f"no babelcap server answered at {base} ({error.__cause__ or error}); start one or "
            "pass --server URL, or translate locally with --model DIR"
        ) from error
    except RequestFailedError as error:
        if 400 <= error.status_code < 500:  # a bad code, key or text: the settings, not the run
            raise ConfigurationError(str(error)) from error
        raise


class TranslationBatcher:
    """Gathers the texts of many assets into few ``/v1/translations`` calls.

    Each asset awaits :meth:`translate`; calls arriving within ``window_s`` of each other (up to
    ``max_texts`` texts) go to the server as one request, so the server batches every sentence x
    language of many assets into one CTranslate2 call.
    """

    def __init__(
        self, pool: ServerPool, languages: list[str], *, max_texts: int = 64, window_s: float = 0.05
    ) -> None:
        self.pool, self.languages = pool, languages
        self.max_texts, self.window_s = max_texts, window_s
        self.requests = 0
        self._waiting: list[tuple[list[str], _Waiter]] = []
        self._collecting = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def translate(self, texts: list[str]) -> dict[str, list[str]]:
        """{language: translations of ``texts`` in order}."""
        if not texts or not self.languages:
            return {language: [] for language in self.languages}
        future: asyncio.Future[dict[str, list[str]]] = asyncio.get_running_loop().create_future()
        self._waiting.append((texts, future))
        if sum(len(t) for t, _ in self._waiting) >= self.max_texts:
            batch, self._waiting = self._waiting, []
            self._spawn(self._send(batch))
        elif not self._collecting:
            self._collecting = True
            self._spawn(self._after_window())
        return await future

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    async def _after_window(self) -> None:
        await asyncio.sleep(self.window_s)
        self._collecting = False
        batch, self._waiting = self._waiting, []
        await self._send(batch)

    async def _send(self, batch: list[tuple[list[str], _Waiter]]) -> None:
        if not batch:
            return
        texts = [text for chunk, _ in batch for text in chunk]
        self.requests += 1
        try:
            result = await self.pool.translate(texts, self.languages)
        except Exception as error:  # every waiting asset learns of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for chunk, future in batch:
            end = start + len(chunk)
            if not future.done():
                future.set_result({code: outputs[start:end] for code, outputs in result.items()})
            start = end
