"""The result record: one per asset, one JSON line in the results file.

:func:`make_record` is the one place a record is built; :meth:`ResultRecord.to_json` is the line
written (keys in the order of the fields; ``content_hash``, ``settings_hash``, a task's
``attempts`` and ``tags`` only when there is one). Reading a results file back gives the same
models, so readers use attributes, not guessed keys.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

__all__ = ["RecordError", "ResultRecord", "TaskResult", "make_record"]


class _Record(BaseModel):
    """A part of a record: fields listed in ``_OMITTED_WHEN_NONE`` are left out of the JSON
    when they hold None; every other field is always written."""

    model_config = ConfigDict(extra="ignore")
    _OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self._OMITTED_WHEN_NONE:
            if data.get(name, 0) is None:
                del data[name]
        return data


class TaskResult(_Record):
    """One task's answer for one asset."""

    _OMITTED_WHEN_NONE = ("attempts", "tags")

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    temperature: float | None = None
    attempts: int | None = None
    """Requests it took; written only when a retry was needed."""
    tags: list[str] | None = None
    """The parsed tags of a ``tags`` task."""


class RecordError(BaseModel):
    """Why an asset failed: the error class's ``kind`` and its message."""

    kind: str
    message: str


class ResultRecord(_Record):
    """Everything babelcap caption learnt about one asset."""

    _OMITTED_WHEN_NONE = ("content_hash", "settings_hash")

    path: str
    kind: str | None
    """``image``, ``video``, or None when the file could not be read."""
    status: Literal["ok", "error"] = "ok"
    error: RecordError | None = None
    model: str | None = None
    media: dict[str, Any] = {}
    tasks: dict[str, TaskResult] = {}
    translations: dict[str, dict[str, str]] = {}
    """{language: {task: translated text}}."""
    content_hash: str | None = None
    settings_hash: str | None = None
    timings: dict[str, float] = {}
    """Seconds spent preparing the media, asking the model and translating."""
    seconds: float = 0.0
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as written to the results file."""
        return self.model_dump()


def make_record(
    path: str,
    kind: str | None,
    *,
    started: float | None = None,
    error: RecordError | None = None,
    model: str | None = None,
    media: dict[str, Any] | None = None,
    tasks: dict[str, TaskResult] | None = None,
    translations: dict[str, dict[str, str]] | None = None,
    hashes: tuple[str, str] | None = None,
    timings: dict[str, float] | None = None,
) -> ResultRecord:
    """The record of one asset: ``error`` decides its status; ``started`` (a
    :func:`time.perf_counter` value) its ``seconds``; ``hashes`` is (content, settings)."""
    seconds = 0.0 if started is None else round(time.perf_counter() - started, 4)
    return ResultRecord(
        path=path,
        kind=kind,
        status="ok" if error is None else "error",
        error=error,
        model=model,
        media=media or {},
        tasks=tasks or {},
        translations=translations or {},
        content_hash=hashes[0] if hashes else None,
        settings_hash=hashes[1] if hashes else None,
        timings={k: round(v, 4) for k, v in (timings or {}).items()},
        seconds=seconds,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
