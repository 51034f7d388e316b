"""The translation engine: NLLB-200 on CTranslate2, sentence by sentence, micro-batched.

Each call is segmented and tokenized in a worker thread (a 1 MB text never stalls the event
loop), every sentence that is too long is split by tokens (never cut), and its sentences x
target languages become one ticket. A background task waits a few milliseconds for more, then
sends rounds of at most ``round_size`` sentences to ``translate_batch`` (CTranslate2 sorts and
sub-batches by length itself) in a worker thread, taking an equal share from every waiting
ticket: a small request is not stuck behind a large one, and a call that is cancelled (its
client left) has its remaining sentences dropped before the next round. Decoding is
deterministic (greedy or a small beam), its length is bounded relative to each source sentence,
and repeated n-grams are blocked. A sentence with words that comes back empty is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.core.errors import TranslationError
from babelcap.server.translation.languages import LanguageCatalog
from babelcap.server.translation.limits import (
    EmptyTranslationError,
    EngineFailure,
    LimitExceededError,
    TranslationLimits,
    check_texts,
)
from babelcap.server.translation.segment import Segment, split_pieces, split_text, windows

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
        200, ge=8, le=510,
        description="longer sentences are split at clauses, then words, then tokens",
    )  # fmt: skip
    round_size: int = Field(
        256, ge=1,
        description="sentences per CTranslate2 call; concurrent requests share each call, and "
        "a request whose client left is dropped between calls",
    )  # fmt: skip
    max_length_ratio: float = Field(
        2.0, gt=0, description="output tokens allowed per source token (plus 10)"
    )
    no_repeat_ngram_size: int = Field(
        4, ge=0, description="block any repeated n-gram of this size (0 disables)"
    )
    repetition_penalty: float = Field(1.0, ge=1.0, description="> 1 discourages repetition")


#: Characters tokenized per sentencepiece call (each call holds the GIL).
_WINDOW_CHARS = 4096
#: Texts up to this many characters are segmented on the event loop (a thread hop costs more).
_INLINE_CHARS = 2000
#: Scripts written without spaces between words: split pieces are joined with nothing.
_UNSPACED_SCRIPTS = frozenset({"Hans", "Hant", "Jpan", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"})

_Key = tuple[tuple[str, ...], str]
#: Per segment of a text: its pieces' tokens (None: passed through as it is) and the segment.
_Plan = list[tuple[list[list[str]] | None, Segment]]


@dataclass
class Translation:
    """The result of one call: per target language, one output per input text, in order."""

    texts: dict[str, list[str]]
    sentences: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


@dataclass(eq=False)
class _Ticket:
    """One call's distinct (tokens, target) pairs: those still to send, and the results."""

    pending: deque[_Key]
    done: asyncio.Future[None]
    results: dict[_Key, tuple[str, int]] = field(default_factory=dict)
    in_flight: int = 0


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
        self._tickets: deque[_Ticket] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # translate_batch calls made, for metrics and tests
        self.longest_source_tokens = 0  # the longest input sent to the model so far
        self.sentences_total = 0  # sentences x languages translated since start
        self.dropped_total = 0  # sentences x languages dropped because their caller left

    # --- public API --------------------------------------------------------------------------
    async def translate(
        self,
        texts: list[str],
        targets: list[str],
        source: str = "eng_Latn",
        limits: TranslationLimits | None = None,
    ) -> Translation:
        """Translate each of ``texts`` into each of ``targets``; codes are FLORES-200 or ISO 639.

        With ``limits``, a call over them raises :class:`LimitExceededError` before any work.
        Cancelling the call drops its sentences that have not reached the model yet."""
        started = time.perf_counter()
        source = self.languages.resolve(source)
        resolved = list(dict.fromkeys(self.languages.resolve(t) for t in dict.fromkeys(targets)))
        if not resolved:
            raise TranslationError("no target language given: pass at least one, e.g. fra_Latn")
        if limits is not None:
            check_texts(texts, limits)
        if sum(len(text) for text in texts) <= _INLINE_CHARS:
            plans = self._plan_all(texts, source)
        else:
            plans = await asyncio.to_thread(self._plan_all, texts, source)
        wanted = [target for target in resolved if target != source]
        pieces = sum(len(chunks or ()) for plan in plans for chunks, _ in plan)
        if limits is not None and pieces * len(wanted) > limits.max_sentences:
            raise LimitExceededError(
                "sentences x target languages", pieces * len(wanted), limits.max_sentences,
                "--max-translation-sentences",
                "send fewer texts or languages per request (long sentences count once per "
                f"{self.settings.max_sentence_tokens}-token piece)",
            )  # fmt: skip
        keys = {
            (tuple([source, *chunk, "</s>"]), target): None
            for target in wanted
            for plan in plans
            for chunks, _ in plan
            for chunk in chunks or ()
        }
        results = await self._run_ticket(list(keys)) if keys else {}
        self.sentences_total += pieces * len(wanted)
        result = Translation(
            texts={},
            sentences=pieces * len(wanted),
            input_tokens=len(wanted)
            * sum(len(c) + 2 for plan in plans for chunks, _ in plan for c in chunks or ()),
            output_tokens=sum(count for _, count in results.values()),
        )
        for target in resolved:
            joiner = "" if target[4:] in _UNSPACED_SCRIPTS else " "
            outputs = []
            for index, plan in enumerate(plans):
                parts = []
                for chunks, segment in plan:
                    if chunks is None or target == source:
                        parts.append(segment.text + segment.trailing)
                        continue
                    texts_out = []
                    for chunk in chunks:
                        text = results[(tuple([source, *chunk, "</s>"]), target)][0]
                        if not text.strip() and any(c.isalpha() for piece in chunk for c in piece):
                            raise EmptyTranslationError(target, index, segment.text)
                        texts_out.append(text)
                    parts.append(joiner.join(texts_out) + segment.trailing)
                outputs.append("".join(parts))
            result.texts[target] = outputs
        result.seconds = time.perf_counter() - started
        return result

    async def aclose(self) -> None:
        """Stop the batching task; calls still waiting fail."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
            self._wake = None
        while self._tickets:
            ticket = self._tickets.popleft()
            if not ticket.done.done():
                ticket.done.set_exception(EngineFailure("the translator was stopped"))

    # --- internals ---------------------------------------------------------------------------
    def _plan_all(self, texts: list[str], source: str) -> list[_Plan]:
        return [self._plan(text, source) for text in texts]

    def _plan(self, text: str, source: str) -> _Plan:
        """For each segment: its sentence pieces' tokens (None: pass through) and the segment.
        Long segments are tokenized window by window and split by tokens, never cut."""
        limit = self.settings.max_sentence_tokens
        plan: _Plan = []
        for segment in split_text(text, source):
            if not segment.translate:
                plan.append((None, segment))
                continue
            chunks = [
                chunk
                for window in windows(segment.text, _WINDOW_CHARS)
                for chunk in split_pieces(self._pieces.encode(window, out_type=str), limit)
                if chunk
            ]
            plan.append((chunks, segment))
        return plan

    async def _run_ticket(self, keys: list[_Key]) -> dict[_Key, tuple[str, int]]:
        if self._wake is None or self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = asyncio.create_task(self._run(self._wake))
        ticket = _Ticket(deque(keys), asyncio.get_running_loop().create_future())
        self._tickets.append(ticket)
        self._wake.set()
        try:
            await ticket.done  # cancelling this call cancels the ticket: the worker skips it
        except asyncio.CancelledError:
            self.dropped_total += len(ticket.pending)
            ticket.pending.clear()
            raise
        return ticket.results

    def _take_round(self) -> dict[_Key, list[_Ticket]]:
        """Up to ``round_size`` keys, an equal share from every ticket with work left."""
        taken: dict[_Key, list[_Ticket]] = {}
        budget = self.settings.round_size
        live = [t for t in self._tickets if t.pending and not t.done.done()]
        while budget > 0 and live:
            share = max(1, budget // len(live))
            for ticket in live:
                for _ in range(min(share, len(ticket.pending), budget)):
                    taken.setdefault(ticket.pending.popleft(), []).append(ticket)
                    ticket.in_flight += 1
                    budget -= 1
            live = [t for t in live if t.pending]
        return taken

    async def _run(self, wake: asyncio.Event) -> None:
        window = self.settings.batch_window_ms / 1000
        while True:
            await wake.wait()
            if window:
                await asyncio.sleep(window)  # let concurrent calls join the first round
            while taken := self._take_round():
                try:
                    translated = await asyncio.to_thread(self._translate_batch, list(taken))
                except Exception as error:
                    failure = EngineFailure(f"CTranslate2 failed on a batch: {error}")
                    for tickets in taken.values():
                        for ticket in tickets:
                            if not ticket.done.done():
                                ticket.done.set_exception(failure)
                    translated = {}
                for key, tickets in taken.items():
                    for ticket in tickets:
                        ticket.in_flight -= 1
                        if key in translated:
                            ticket.results[key] = translated[key]
                        if not ticket.pending and not ticket.in_flight and not ticket.done.done():
                            ticket.done.set_result(None)
                self._tickets = deque(t for t in self._tickets if not t.done.done())
            wake.clear()

    def _translate_batch(self, keys: list[_Key]) -> dict[_Key, tuple[str, int]]:
        """One translate_batch call per output-length bucket (usually one or two in all)."""
        settings = self.settings
        buckets: dict[int, list[_Key]] = {}
        for key in keys:
            self.longest_source_tokens = max(self.longest_source_tokens, len(key[0]))
            # +11: the forced language code and a little slack for very short sentences.
            bound = min(512, int(settings.max_length_ratio * len(key[0])) + 11)
            buckets.setdefault(max(32, 1 << (bound - 1).bit_length()), []).append(key)
        out: dict[_Key, tuple[str, int]] = {}
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
