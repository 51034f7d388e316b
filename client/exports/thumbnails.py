"""Small previews for the HTML report, made from the media themselves: a JPEG thumbnail of an
image (EXIF orientation applied, transparency on white), and a few frames of a video (at the
times the model saw, from the record, else spread evenly) decoded with PyAV. A medium that is
gone or cannot be read gives no preview, never an error: the report says so."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path

import av
from PIL import Image, ImageOps

__all__ = ["image_thumbnail", "pick_times", "video_frames"]

log = logging.getLogger(__name__)


def _jpeg(image: Image.Image, size: int) -> bytes:
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    image = image.convert("RGB")
    image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80, optimize=True)
    return buffer.getvalue()


def image_thumbnail(path: Path, size: int) -> bytes | None:
    """A JPEG at most ``size`` pixels on its longer side; None if ``path`` cannot be read."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            return _jpeg(ImageOps.exif_transpose(image), size)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        log.debug("no thumbnail for %s: %s", path, error)
        return None


def pick_times(sampled: Sequence[float], duration: float | None, count: int) -> list[float]:
    """``count`` times (seconds from the start) to show: evenly chosen among the frames the
    model saw, else spread evenly over ``duration``."""
    if sampled:
        if len(sampled) <= count:
            return list(sampled)
        step = len(sampled) / count
        return [sampled[int(i * step + step / 2)] for i in range(count)]
    if duration:
        return [duration * (i + 0.5) / count for i in range(count)]
    return [0.0]


def video_frames(path: Path, times: Sequence[float], size: int) -> list[bytes]:
    """A JPEG per time in ``times`` (the first frame at or after it); [] if unreadable."""
    frames: list[bytes] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            base = stream.time_base
            start = float(stream.start_time * base) if stream.start_time and base else 0.0
            for seconds in times:
                target = start + seconds
                if base:
                    container.seek(int(target / base), stream=stream, backward=True)
                else:
                    container.seek(0)
                chosen = None
                for frame in container.decode(stream):
                    chosen = frame
                    if frame.time is None or frame.time >= target - 1e-3:
                        break
                if chosen is not None:
                    image = chosen.to_image()  # type: ignore[no-untyped-call]
                    frames.append(_jpeg(image, size))
    except (av.FFmpegError, OSError, IndexError, ValueError) as error:
        log.debug("no frames for %s: %s", path, error)
    return frames
