"""The original scripts' media handling, kept in one place as the baseline benchmarks compare
against. Imports only PyAV and Pillow, so a benchmark process measuring it pays for nothing else."""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image

__all__ = ["decode_everything"]


def decode_everything(path: Path, count: int) -> list[Image.Image]:
    """The original frame sampling: ``count`` frames at evenly spaced indices of the header's
    frame count, found by decoding every frame from the start up to the last one wanted."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = stream.frames
        wanted = [int((i + 0.5) * total / count) for i in range(count)]
        kept = []
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                kept.append(frame.to_image())  # type: ignore[no-untyped-call]
            if index >= wanted[-1]:
                break
    return kept
