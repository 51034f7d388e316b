"""Ask one prepared asset every task at once, then translate the chosen answers (batched across
assets): the step both engines share, so that their records are the same."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from babelcap.client.config import CaptionSettings
from babelcap.client.media import Prepared
from babelcap.client.records import TaskResult
from babelcap.client.requests import Completion, ServerPool
from babelcap.client.tags import parse_tags
from babelcap.client.translate import TranslationBatcher
from babelcap.core.errors import (
    BabelcapError,
    RequestFailedError,
    ServerUnavailableError,
    TranslationError,
)
from babelcap.prompts import TaskPrompt

__all__ = ["Asker", "media_variables"]


def media_variables(meta: dict[str, Any]) -> dict[str, Any]:
    """What a prompt may say about the media it is asked about."""
    return {
        "frames": len(meta.get("sampled_timestamps", [])),
        "duration": meta.get("duration", 0.0),
        "width": meta.get("width", 0),
        "height": meta.get("height", 0),
    }


class Asker:
    """The tasks and translations of one asset, against a :class:`ServerPool`."""

    def __init__(
        self,
        settings: CaptionSettings,
        tasks: list[TaskPrompt],
        pool: ServerPool,
        batcher: TranslationBatcher,
    ) -> None:
        self.settings, self.tasks, self.pool, self.batcher = settings, tasks, pool, batcher

    async def answer(
        self, name: str, kind: str, model: str, prepared: Prepared, results: dict[str, TaskResult],
        completions: dict[str, Completion], timings: dict[str, float],
    ) -> dict[str, dict[str, str]]:  # fmt: skip
        """Fill ``results`` (and ``completions``, ``timings``); return the translations
        ({language: {task: text}}). A failed task or translation is raised once all tasks
        have finished."""
        await self._ask(kind, model, prepared, results, completions, timings)
        t0 = time.perf_counter()
        translated = await self._translate(name, results)
        if translated is None:
            return {}
        timings["translation_s"] = time.perf_counter() - t0
        return translated

    async def _ask(
        self, kind: str, model: str, prepared: Prepared, results: dict[str, TaskResult],
        completions: dict[str, Completion], timings: dict[str, float],
    ) -> None:  # fmt: skip
        """Ask every task at once; each answer goes into ``results`` (and ``completions``), and
        the first failure is raised once all have finished."""
        variables = media_variables(prepared.meta)
        tasks = [task for task in self.tasks if task.variant(kind) is not None]
        temperature = {
            task.task: task.temperature if self.settings.temperature is None
            else self.settings.temperature
            for task in tasks
        }  # fmt: skip
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(
                self.pool.chat(
                    model,
                    task.messages(kind, prepared.part, variables),
                    max_tokens=self.settings.max_tokens or task.max_tokens,
                    temperature=temperature[task.task],
                )
                for task in tasks
            ),
            return_exceptions=True,
        )
        timings["inference_s"] = time.perf_counter() - t0
        failure: BaseException | None = None
        for task, answer in zip(tasks, answers, strict=True):
            if isinstance(answer, Completion):
                results[task.task] = TaskResult(
                    text=answer.text.strip(),
                    prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens,
                    ttft_s=round(answer.ttft_s, 4),
                    latency_s=round(answer.latency_s, 4),
                    finish_reason=answer.finish_reason,
                    temperature=temperature[task.task],
                    attempts=answer.attempts if answer.attempts > 1 else None,
                    tags=parse_tags(answer.text) if task.output == "tags" else None,
                )
                completions[task.task] = answer
            elif isinstance(answer, ServerUnavailableError):
                raise answer
            elif isinstance(answer, BabelcapError):
                failure = failure or answer
            else:
                raise answer
        if failure is not None:
            raise failure

    async def _translate(
        self, path: str, results: dict[str, TaskResult]
    ) -> dict[str, dict[str, str]] | None:
        """{language: {task: text}} of the tasks chosen for translation (None: nothing to
        translate)."""
        names = [n for n in self.settings.translate if n in results]
        texts = [results[n].text for n in names]
        if not texts or not self.batcher.languages:
            return None
        try:
            outputs = await self.batcher.translate(texts)
        except RequestFailedError as error:
            raise TranslationError(f"{path}: translation failed: {error}") from error
        return {
            language: dict(zip(names, values, strict=True)) for language, values in outputs.items()
        }
