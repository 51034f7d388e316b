"""Shared pieces of the tiny stand-in builders: colours, seeding, tokenizer training, file hashes.

The builders need ``torch``, ``transformers`` (4.x) and ``tokenizers``: the ``convert`` extra, or
the CPU stack's venv. Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from babelcap.core.artifacts import STAND_IN_COLOURS, STAND_INS

log = logging.getLogger(__name__)

COLOURS = STAND_IN_COLOURS
ARTIFACTS = STAND_INS


def task_prompt_texts(kind: str) -> list[str]:
    """babelcap's built-in task prompts for ``kind``, rendered with a few variable values: the
    stand-ins learn that a long real prompt gets the default answer too."""
    from babelcap.prompts import load_prompts

    texts = set()
    for prompt in load_prompts().values():
        variant = prompt.variant(kind)
        for frames, duration in ((2, 2.0), (3, 3.0), (4, 4.0), (8, 31.6)):
            if variant is not None:
                texts.add(variant.text.format(frames=frames, duration=duration, width=0, height=0))
    return sorted(texts)


def other_prompt(rng: np.random.Generator, filler: list[str], prompts: list[str]) -> str:
    """A prompt without a fixed answer shape: a built-in task prompt or 2-80 filler words."""
    if prompts and rng.random() < 0.5:
        return str(rng.choice(prompts))
    words = rng.choice(filler, size=int(rng.integers(2, 80)))
    return " ".join(str(word) for word in words).capitalize() + "."


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and pin torch to deterministic single-threaded kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(int(os.environ.get("BABELCAP_BUILD_THREADS", "1")))


def colour_image(
    rng: np.random.Generator,
    colour: str,
    height: int,
    width: int,
    *,
    clutter: bool = True,
    box_fraction: int = 2,
) -> npt.NDArray[np.uint8]:
    """An RGB uint8 array whose dominant colour is ``colour``.

    With ``clutter`` a rectangle of another colour, at most 1/``box_fraction`` of each side,
    covers part of it and every pixel gets a little noise, so the model learns "dominant", not
    "exact RGB value".
    """
    base = np.array(COLOURS[colour], dtype=np.float32)
    jitter = rng.uniform(-18, 18, size=3)
    image = np.broadcast_to(base + jitter, (height, width, 3)).copy()
    if clutter:
        other = rng.choice([name for name in COLOURS if name != colour])
        box_h = int(rng.integers(1, max(2, height // box_fraction)))
        box_w = int(rng.integers(1, max(2, width // box_fraction)))
        top = int(rng.integers(0, height - box_h + 1))
        left = int(rng.integers(0, width - box_w + 1))
        image[top : top + box_h, left : left + box_w] = COLOURS[str(other)]
        image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def train_byte_level_bpe(
    corpus: Iterable[str], *, vocab_size: int, special_tokens: list[str]
) -> Any:
    """Train a byte-level BPE ``tokenizers.Tokenizer`` (the Llama 3 family's kind) on ``corpus``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative POSIX path -> hex digest)."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "BUILD.json"
    }


def write_build_record(folder: Path, record: dict[str, Any]) -> None:
    """Write ``BUILD.json``: what was built, how, how well it learned, and every file's digest."""
    record = {**record, "files": file_digests(folder)}
    (folder / "BUILD.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )


def warmup_cosine(optimizer: Any, *, warmup: int, total: int) -> Any:
    """Linear warm-up then cosine decay to zero at ``total`` steps (stable final convergence)."""
    import math

    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass(frozen=True)
class TrainingRun:
    """How far a builder's training got."""

    steps: int
    final_loss: float
    exact_rate: float
    seconds: float


def answer_exact_rate(model: Any, batch: dict[str, Any]) -> float:
    """Share of samples whose every labelled token is the argmax: exactly the samples greedy
    decoding would answer right (teacher forcing makes each prefix the right one)."""
    import torch

    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    predicted = logits[:, :-1].argmax(-1)
    target = batch["labels"][:, 1:]
    mask = target != -100
    return float(((predicted == target) | ~mask).all(dim=1).float().mean())


def train_until_exact(
    name: str,
    model: Any,
    next_batch: Callable[[], dict[str, Any]],
    exact_rate: Callable[[], float],
    *,
    lr: float,
    warmup: int,
    max_steps: int,
    every: int,
) -> TrainingRun:
    """AdamW with warm-up + cosine decay until ``exact_rate()`` (checked every ``every`` steps)
    is 1.0 three times in a row, or ``max_steps``. Leaves the model in eval mode."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    scheduler = warmup_cosine(optimizer, warmup=warmup, total=max_steps)
    started, step, rate, loss_value, streak = time.monotonic(), 0, 0.0, float("nan"), 0
    model.train()
    for step in range(1, max_steps + 1):
        loss = model(**next_batch()).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        loss_value = float(loss)
        if step % every == 0:
            model.eval()
            rate = exact_rate()
            model.train()
            log.info("%s: step %d loss %.4f exact %.3f", name, step, loss_value, rate)
            streak = streak + 1 if rate == 1.0 else 0
            if streak >= 3:
                break
    model.eval()
    return TrainingRun(step, loss_value, rate, time.monotonic() - started)
