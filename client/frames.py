"""Sample N video frames uniformly in time with PyAV, cheaply and correctly.

1. A demux-only scan (no decoding, about 2% of the cost) lists every video packet's pts and
   keyframe flag: exact frame count, start and end, even where the header has none (WebM, MKV,
   MPEG-TS) or lies (truncated MP4).
2. The targets are the centres of N equal slices of [start, end), each snapped to a real frame.
3. For each target: seek to the keyframe at or before it, *check* the first decoded pts (MPEG-TS
   seeks land late; without the check the frame is silently wrong), fall back to an earlier
   keyframe if needed, and decode forward to the target. A target in the GOP being decoded is
   reached without seeking. So only the GOPs holding targets are decoded, not the whole video.
4. Rotation metadata is applied (PyAV does not), frames are resized to the model's frame size
   and JPEG-encoded. A truncated file is sampled over its readable part and flagged.
"""

from __future__ import annotations

import bisect
import io
import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from babelcap.core import defaults
from babelcap.core.errors import MediaDecodeError

__all__ = ["PreparedVideo", "sample_frames"]


@dataclass(frozen=True)
class PreparedVideo:
    """JPEG frames in time order and the video's metadata."""

    frames: list[bytes]
    meta: dict[str, Any]


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise MediaDecodeError(
            f"{path}: FFmpeg cannot open it ({error}); a truncated MP4 whose index (moov) was "
            "at the end cannot be read: re-encode it with -movflags +faststart"
        ) from error


def _scan(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[list[int], list[int], int, bool]:
    """Sorted frame pts, sorted keyframe pts, the typical frame duration, and truncation."""
    pts: list[int] = []
    keys: list[int] = []
    durations: list[int] = []
    truncated = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
            if packet.duration:
                durations.append(packet.duration)
    except (av.FFmpegError, EOFError):
        truncated = True
    pts.sort()
    keys.sort()
    gaps = [b - a for a, b in itertools.pairwise(pts) if b > a]
    step = int(statistics.median(durations or gaps or [1]))
    return pts, keys, max(1, step), truncated


def _targets(pts: list[int], step: int, count: int) -> list[int]:
    """The frame nearest the centre of each of ``count`` equal slices of the timeline."""
    start, end = pts[0], pts[-1] + step
    chosen = []
    for i in range(count):
        centre = start + (i + 0.5) * (end - start) / count
        at = bisect.bisect_left(pts, centre)
        near = pts[max(0, at - 1) : at + 1]
        chosen.append(min(near, key=lambda p: (abs(p - centre), p)))
    return chosen


class _Decoder:
    """Decode forward from verified keyframe seeks.

    Frames before the current target that no other frame references (B-frames, mostly) are not
    decoded at all (``skip_frame = NONREF``): the pixels of the target are identical, and
    reaching a target mid-GOP costs about a third less.
    """

    def __init__(
        self, container: av.container.InputContainer, stream: av.VideoStream, keys: list[int]
    ) -> None:
        self.container, self.stream, self.keys = container, stream, keys
        self.frames: Iterator[av.VideoFrame] | None = None
        self.pending: av.VideoFrame | None = None
        self.position = -(2**62)
        self.target = 0

    def _decoded(self) -> Iterator[av.VideoFrame]:
        context = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            early = packet.pts is not None and packet.pts < self.target
            context.skip_frame = "NONREF" if early else "DEFAULT"
            yield from packet.decode()

    def _seek(self, key_index: int) -> None:
        """Seek so that the first frame decoded is not past the target: the keyframe before it,
        then up to two earlier ones (MPEG-TS lands a GOP late), then the very start."""
        offsets = [self.keys[i] for i in range(key_index, max(-1, key_index - 3), -1)]
        offsets.append(-(2**62))
        for offset in offsets:
            self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
            self.stream.codec_context.flush_buffers()
            self.frames = self._decoded()
            first = next(self.frames, None)
            self.pending = first
            if first is not None and (first.pts is None or first.pts <= self.target):
                return

    def frame_at(self, target: int) -> av.VideoFrame | None:
        """The frame whose pts is ``target`` (or the first after it); None past the readable end."""
        self.target = target
        key_index = max(0, bisect.bisect_right(self.keys, target) - 1)
        key = self.keys[key_index] if self.keys else target
        if self.frames is None or self.position >= target or key > self.position:
            self._seek(key_index)
        assert self.frames is not None
        while True:
            frame = self.pending if self.pending is not None else next(self.frames, None)
            self.pending = None
            if frame is None:
                return None
            if frame.pts is None:
                continue
            self.position = frame.pts
            if frame.pts >= target:
                return frame


def _to_jpeg(frame: av.VideoFrame, short_side: int, quality: int) -> tuple[bytes, int, int]:
    """The frame as a JPEG with its short side at most ``short_side`` (after rotation); scaling
    and YUV->RGB conversion happen in one swscale pass, at the small size."""
    rotation = round(frame.rotation or 0) % 360
    width, height = frame.width, frame.height
    scale = min(1.0, short_side / min(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image: Image.Image = frame.to_image(  # type: ignore[no-untyped-call]
        width=size[0], height=size[1], interpolation="AREA" if scale < 1.0 else None
    )
    if rotation:
        # The display matrix angle is counter-clockwise, as Pillow's rotate() takes it.
        image = image.rotate(rotation, expand=True)
        if rotation in (90, 270):
            width, height = height, width
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue(), width, height


def sample_frames(
    path: Path,
    count: int = defaults.VIDEO_FRAMES,
    *,
    short_side: int = defaults.VIDEO_FRAME_SIZE,
    quality: int = defaults.JPEG_QUALITY,
) -> PreparedVideo:
    """``count`` frames of ``path`` sampled uniformly in time, as JPEGs, with metadata."""
    if count < 1:
        raise ValueError("count must be at least 1")
    with _open(path) as container:
        if not container.streams.video:
            kinds = sorted({str(s.type) for s in container.streams}) or ["no streams"]
            raise MediaDecodeError(
                f"{path}: no video stream (it has {', '.join(kinds)}); an audio-only file cannot "
                "be captioned as a video"
            )
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one thread per worker process is cheaper (measured)
        pts, keys, step, truncated = _scan(container, stream)
        if not pts:
            raise MediaDecodeError(f"{path}: the video stream has no frames; is it complete?")
        time_base = stream.time_base or Fraction(1, 1)
        readable_end = pts[-1] + step
        targets = _targets(pts, step, count)
        decoder = _Decoder(container, stream, keys or [pts[0]])
        decoded: dict[int, tuple[bytes, int, int]] = {}
        for target in sorted(set(targets)):
            try:
                frame = decoder.frame_at(target)
            except (av.FFmpegError, EOFError):
                frame = None
            if frame is None:
                truncated = True
                break
            decoded[target] = _to_jpeg(frame, short_side, quality)
        if truncated and len(decoded) < len(set(targets)):
            # Sample again over the part that decodes (a truncated faststart MP4 claims all).
            readable = [p for p in pts if p <= max(decoded, default=pts[0])]
            if not decoded:
                raise MediaDecodeError(f"{path}: no frame decodes; the file is damaged")
            readable_end = readable[-1] + step
            targets = _targets(readable, step, count)
            early_keys = [k for k in keys if k <= readable[-1]] or [pts[0]]
            decoder = _Decoder(container, stream, early_keys)
            for target in sorted(set(targets) - decoded.keys()):
                frame = decoder.frame_at(target)
                if frame is None:
                    raise MediaDecodeError(f"{path}: frames stop decoding early; it is damaged")
                decoded[target] = _to_jpeg(frame, short_side, quality)
        codec = stream.codec_context.name
        rate = stream.average_rate or stream.guessed_rate
    width, height = decoded[targets[0]][1:]
    duration = float((readable_end - pts[0]) * time_base)
    meta: dict[str, Any] = {
        "width": width,
        "height": height,
        "duration": round(duration, 3),
        "fps": round(float(rate), 3) if rate else round(len(pts) / duration, 3),
        "frame_count": len([p for p in pts if p < readable_end]),
        "codec": codec,
        "start_time": round(float(pts[0] * time_base), 3),
        "sampled_timestamps": [round(float((t - pts[0]) * time_base), 3) for t in targets],
        "truncated": truncated,
    }
    return PreparedVideo([decoded[t][0] for t in targets], meta)
