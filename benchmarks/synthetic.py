"""Synthetic media for tests, benchmarks and ``babelcap bench``: no downloads, fully seeded.

Videos are built from solid-colour segments (the tiny stand-ins name the colours, so a caption
proves which frames arrived) or from a moving textured pattern (realistic decoding cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from PIL import Image

__all__ = ["write_audio", "write_image", "write_video"]

RGB = tuple[int, int, int]


def write_image(
    path: Path, size: tuple[int, int], colour: RGB = (220, 30, 30), *, textured: bool = False,
    seed: int = 0, **save: object,
) -> Path:  # fmt: skip
    """A solid (or textured, realistic-to-encode) image; the format follows the suffix."""
    width, height = size
    if textured:
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3), np.uint8)
        base = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
        tint = Image.new("RGB", size, colour)
        image = Image.blend(base, tint, 0.6)
    else:
        image = Image.new("RGB", size, colour)
    image.save(path, **save)  # type: ignore[arg-type]
    return path


def write_video(
    path: Path,
    colours: Sequence[RGB],
    *,
    seconds_each: float = 1.0,
    fps: int = 8,
    size: tuple[int, int] = (128, 96),
    gop: int | None = None,
    codec: str = "libx264",
    rotation: int = 0,
    textured: bool = False,
    preset: str = "veryfast",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """A video of solid-colour (or textured, moving) segments; the container follows the suffix
    (``.mp4``, ``.mkv``, ``.webm``, ``.ts``, ``.mov``). ``gop`` is the keyframe interval."""
    width, height = size
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), np.uint8)
    texture = np.asarray(
        Image.fromarray(texture).resize((width * 2, height), Image.Resampling.BILINEAR)
    )
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = cast(av.VideoStream, container.add_stream(codec, rate=fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        if gop:
            stream.codec_context.gop_size = gop
        codec_options: dict[str, str] = dict(options or {})
        if codec == "libx264":
            codec_options.setdefault("preset", preset)
            if gop:
                codec_options.setdefault("x264-params", f"keyint={gop}:min-keyint={gop}:scenecut=0")
        stream.options = cast(dict[str, object], codec_options)
        if rotation:
            stream.set_display_rotation(rotation)
        index = 0
        for rgb in colours:
            solid = np.broadcast_to(np.array(rgb, dtype=np.uint8), (height, width, 3))
            for _ in range(round(seconds_each * fps)):
                if textured:
                    shift = (index * 4) % width
                    moving = texture[:, shift : shift + width]
                    pixels = (moving.astype(np.uint16) + solid) // 2
                    array = np.ascontiguousarray(pixels.astype(np.uint8))
                else:
                    array = np.ascontiguousarray(solid)
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
                index += 1
        container.mux(stream.encode())
    return path


def write_audio(path: Path, frames: int = 8) -> Path:
    """An audio-only file (silent AAC, 1024 samples a frame at 16 kHz) in the suffix's container:
    what a video pipeline must refuse clearly."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(frames):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
