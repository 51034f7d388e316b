"""The translation engine: NLLB-200 on CTranslate2, sentence by sentence, micro-batched.

Every sentence of every text of every concurrent call, times every target language, is queued;
a background task waits a few milliseconds for more, drops duplicates, and sends them all to one
``translate_batch`` call (CTranslate2 sorts and sub-batches by length itself) in a worker
thread, so the event loop never blocks. Decoding is deterministic (greedy or a small beam), its
length is bounded relative to each source sentence, and repeated n-grams are blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.core.errors import TranslationError
from babelcap.server.translation.languages import LanguageCatalog
from babelcap.server.translation.segment import split_long, split_text

__all__ = ["Translation", "TranslationEngine", "TranslationSettings"]


class TranslationSettings(BaseSettings):
    """How the translator runs. Environment variables: ``BABELCAP_TRANSLATION_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_TRANSLATION_", extra="forbid")

    model: Path = Field(description="CTranslate2 NLLB folder (from 'babelcap convert nllb')")
    device: str = Field("cpu", description="cpu, cuda or auto")
    compute_type: str = Field("default", description="CTranslate2 compute type; default = as saved")
    inter_threads: int = Field(1, ge=1, description="batches CTranslate2 runs in parallel")
    intra_threads: int = Field(0, ge=0, description="threads per batch (0: CTranslate2 decides)")
    beam_size: int = Field(1, ge=1, le=8, description="1 = greedy; small beams (2-4) are slower")
    max_batch_size: int = Field(64, ge=1, description="sentences per CTranslate2 sub-batch")
    batch_window_ms: float = Field(
        5.0, ge=0, description="how long to wait for more work before a batch is sent"
    )
    max_sentence_tokens: int = Field(
        200, ge=8, le=510, description="longer sentences are split at clauses, then words"
    )
    max_length_ratio: float = Field(
        2.0, gt=0, description="output tokens allowed per source token (plus 10)"
    )
    no_repeat_ngram_size: int = Field(
        4, ge=0, description="block any repeated n-gram of this size (0 disables)"
    )
    repetition_penalty: float = Field(1.0, ge=1.0, description="> 1 discourages repetition")


@dataclass
class Translation:
    """The result of one call: per target language, one output per input text, in order."""

    texts: dict[str, list[str]]
    sentences: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


@dataclass
class _Pending:
    key: tuple[tuple[str, ...], str]
    future: asyncio.Future[tuple[str, int]] = field(repr=False)


class TranslationEngine:
    """Translate English (or any FLORES-200 source) text into any of the model's languages."""

    def __init__(self, settings: TranslationSettings) -> None:
        import ctranslate2
        import sentencepiece

        model = settings.model
        spm_file = model / "sentencepiece.bpe.model"
        if not (model / "model.bin").exists() or not spm_file.exists():
            raise TranslationError(
                f"{model} is not a converted NLLB model (model.bin and sentencepiece.bpe.model "
                "expected): create one with 'babelcap convert nllb --model ... --output ...'"
            )
        self.settings = settings
        self.languages = LanguageCatalog.from_model(model)
        self._pieces = sentencepiece.SentencePieceProcessor(model_file=str(spm_file))
        self._translator = ctranslate2.Translator(
            str(model),
            device=settings.device,
            compute_type=settings.compute_type,
            inter_threads=settings.inter_threads,
            intra_threads=settings.intra_threads,
        )
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # translate_batch calls made, for metrics and tests
        self.longest_source_tokens = 0  # the longest input sent to the model so far
        self.sentences_total = 0  # sentences x languages translated since start

    # --- public API --------------------------------------------------------------------------
    async def translate(
        self, texts: list[str], targets: list[str], source: str = "eng_Latn"
    ) -> Translation:
        """Translate each of ``texts`` into each of ``targets``; codes are FLORES-200 or ISO 639."""
        started = time.perf_counter()
        source = self.languages.resolve(source)
        resolved = list(dict.fromkeys(self.languages.resolve(t) for t in targets))
        if not resolved:
            raise TranslationError("no target language given: pass at least one, e.g. fra_Latn")
        plans = [self._plan(text, source) for text in texts]
        jobs: dict[tuple[str, int, int, int], asyncio.Future[tuple[str, int]]] = {}
        input_tokens = 0
        for target in resolved:
            if target == source:
                continue
            for t, plan in enumerate(plans):
                for s, (sentences, _) in enumerate(plan):
                    for p, pieces in enumerate(sentences or []):
                        key = (tuple([source, *pieces, "</s>"]), target)
                        jobs[(target, t, s, p)] = await self._submit(key)
                        input_tokens += len(key[0])
        done = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
        self.sentences_total += len(jobs)
        result = Translation(
            texts={},
            sentences=len(jobs),
            input_tokens=input_tokens,
            output_tokens=sum(count for _, count in done.values()),
        )
        for target in resolved:
            outputs = []
            for t, plan in enumerate(plans):
                parts = []
                for s, (sentences, segment) in enumerate(plan):
                    if sentences is None or target == source:
                        parts.append(segment.text + segment.trailing)
                    else:
                        chunks = (done[(target, t, s, p)][0] for p in range(len(sentences)))
                        parts.append(" ".join(chunks) + segment.trailing)
                outputs.append("".join(parts))
            result.texts[target] = outputs
        result.seconds = time.perf_counter() - started
        return result

    async def aclose(self) -> None:
        """Stop the batching task (pending work is cancelled)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
            self._queue = None

    # --- internals ---------------------------------------------------------------------------
    def _plan(self, text: str, source: str) -> list[tuple[list[list[str]] | None, Any]]:
        """For each segment: its sentence pieces (None: pass through) and the segment."""
        limit = self.settings.max_sentence_tokens

        def length(part: str) -> int:
            return len(self._pieces.encode(part))

        plan: list[tuple[list[list[str]] | None, Any]] = []
        for segment in split_text(text, source):
            if not segment.translate:
                plan.append((None, segment))
                continue
            parts = split_long(segment.text, length, limit)
            pieces = [self._pieces.encode(p, out_type=str)[:limit] for p in parts]
            plan.append((pieces, segment))
        return plan

    async def _submit(self, key: tuple[tuple[str, ...], str]) -> asyncio.Future[tuple[str, int]]:
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run(self._queue))
        future: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(key, future))
        return future

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        window = self.settings.batch_window_ms / 1000
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + window
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            while not queue.empty():
                batch.append(queue.get_nowait())
            unique = list(dict.fromkeys(item.key for item in batch))
            try:
                translated = await asyncio.to_thread(self._translate_batch, unique)
            except Exception as error:
                failure = TranslationError(f"CTranslate2 failed on a batch: {error}")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(failure)
                continue
            for item in batch:
                if not item.future.done():
                    item.future.set_result(translated[item.key])

    def _translate_batch(
        self, keys: list[tuple[tuple[str, ...], str]]
    ) -> dict[tuple[tuple[str, ...], str], tuple[str, int]]:
        """One translate_batch call per output-length bucket (usually one or two in all)."""
        settings = self.settings
        buckets: dict[int, list[tuple[tuple[str, ...], str]]] = {}
        for key in keys:
            self.longest_source_tokens = max(self.longest_source_tokens, len(key[0]))
            # +11: the forced language code and a little slack for very short sentences.
            bound = min(512, int(settings.max_length_ratio * len(key[0])) + 11)
            buckets.setdefault(max(32, 1 << (bound - 1).bit_length()), []).append(key)
        out: dict[tuple[tuple[str, ...], str], tuple[str, int]] = {}
        for bound, group in sorted(buckets.items()):
            self.batches += 1
            results = self._translator.translate_batch(
                [list(source) for source, _ in group],
                target_prefix=[[target] for _, target in group],
                beam_size=settings.beam_size,
                max_batch_size=settings.max_batch_size,
                max_decoding_length=min(512, bound),
                no_repeat_ngram_size=settings.no_repeat_ngram_size,
                repetition_penalty=settings.repetition_penalty,
            )
            for key, result in zip(group, results, strict=True):
                tokens = result.hypotheses[0][1:]  # drop the target code
                out[key] = (self._pieces.decode(tokens), len(tokens))
        return out
