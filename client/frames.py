"""Sample N video frames uniformly in time with PyAV, cheaply, correctly, and as far as the file
can be read.

1. The stream is the one FFmpeg chooses (``av_find_best_stream``: the default disposition
   first), never an attached picture (cover art).
2. A demux-only scan (no decoding, about 2% of the cost) lists every video packet's pts and
   keyframe flag: exact frame count, start and end, even where the header has none (WebM, MKV,
   MPEG-TS) or lies (truncated MP4).
3. The targets are the centres of N equal slices of [start, end), each snapped to a real frame.
4. For each target: seek to the keyframe at or before it, *check* the first decoded pts (MPEG-TS
   seeks land late; without the check the frame is silently wrong), fall back to an earlier
   keyframe if needed, and decode forward to the target. A target in the GOP being decoded is
   reached without seeking. So only the GOPs holding targets are decoded, not the whole video.
5. Damage is skipped, never taken as the end: a packet that fails to decode or a frame FFmpeg
   flags corrupt sends decoding on to the next keyframe that decodes cleanly. A target takes
   the first clean frame at or after it while that frame is still in the target's slice;
   otherwise its slice is unreadable and left out (``damaged``, ``skipped_timestamps``).
6. Truncation is judged against the header (MP4, MOV, MKV, WebM, AVI...: not MPEG-TS, whose
   "header" duration is itself estimated from the readable part): fewer packets or a shorter
   span than the header claims is ``truncated``; the record then keeps the header's duration
   and frame count and says how much was read (``readable_duration``, ``readable_frames``).
   Frames that stop decoding before the end are sampled again over the part that decodes.
7. Rotation metadata is applied (PyAV does not), frames are resized to the model's frame size
   and JPEG-encoded.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.stream import Disposition
from PIL import Image

from babelcap.client.storage import RemoteObject, open_object
from babelcap.core import defaults
from babelcap.core.errors import MediaDecodeError

__all__ = ["PreparedVideo", "sample_frames"]

# Containers whose "header" duration FFmpeg estimates from the packets it can read (or from the
# bit rate): they cannot show truncation.
_ESTIMATED = {"mpegts", "mpeg", "mpegvideo", "h264", "hevc", "m4v", "mjpeg", "rawvideo"}


@dataclass(frozen=True)
class PreparedVideo:
    """JPEG frames in time order and the video's metadata."""

    frames: list[bytes]
    meta: dict[str, Any]


def _open(path: Path | RemoteObject, stack: contextlib.ExitStack) -> av.container.InputContainer:
    try:
        if isinstance(path, RemoteObject):  # ranged reads: the index and the sampled frames
            return av.open(stack.enter_context(open_object(path)), mode="r")
        return av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise MediaDecodeError(
            f"{path}: FFmpeg cannot open it ({error}); a truncated MP4 whose index (moov) was "
            "at the end cannot be read: re-encode it with -movflags +faststart"
        ) from error


def _video_stream(
    container: av.container.InputContainer, path: Path | RemoteObject
) -> av.VideoStream:
    """The stream FFmpeg would pick, cover art excluded."""
    videos = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
    if not videos:
        kinds = sorted({str(s.type) for s in container.streams if s.type != "video"})
        covers = " and a cover image" if container.streams.video else ""
        raise MediaDecodeError(
            f"{path}: no video stream (it has {', '.join(kinds) or 'no streams'}{covers}); an "
            "audio-only file cannot be captioned as a video"
        )
    best = container.streams.best("video")
    if best is not None and any(s.index == best.index for s in videos):
        return videos[[s.index for s in videos].index(best.index)]
    defaults_first = [s for s in videos if s.disposition & Disposition.default]
    return (defaults_first or videos)[0]


@dataclass
class _Scan:
    pts: list[int]
    keys: list[int]
    step: int
    broken: bool
    """The demuxer stopped with an error before the end."""


def _scan(container: av.container.InputContainer, stream: av.VideoStream) -> _Scan:
    """Sorted frame pts, sorted keyframe pts, the typical frame duration, demux failure."""
    pts: list[int] = []
    keys: list[int] = []
    durations: list[int] = []
    broken = False
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
        broken = True
    pts.sort()
    keys.sort()
    gaps = [b - a for a, b in itertools.pairwise(pts) if b > a]
    step = int(statistics.median(durations or gaps or [1]))
    return _Scan(pts, keys, max(1, step), broken)


def _targets(pts: list[int], step: int, count: int) -> tuple[list[int], list[float]]:
    """The frame nearest the centre of each of ``count`` equal slices of the timeline, and the
    end of each slice."""
    start, end = pts[0], pts[-1] + step
    chosen, ends = [], []
    for i in range(count):
        centre = start + (i + 0.5) * (end - start) / count
        at = bisect.bisect_left(pts, centre)
        near = pts[max(0, at - 1) : at + 1]
        chosen.append(min(near, key=lambda p: (abs(p - centre), p)))
        ends.append(start + (i + 1) * (end - start) / count)
    return chosen, ends


class _Decoder:
    """Decode forward from verified keyframe seeks, skipping damage to the next clean keyframe.

    Frames before the current target that no other frame references (B-frames, mostly) are not
    decoded at all (``skip_frame = NONREF``): the pixels of the target are identical, and
    reaching a target mid-GOP costs about a third less.
    """

    def __init__(
        self, container: av.container.InputContainer, stream: av.VideoStream, keys: list[int],
        gap: int | None = None,
    ) -> None:  # fmt: skip
        self.container, self.stream, self.keys = container, stream, keys
        self.gap = gap  # a longer jump between packets means lost packets (MPEG-TS)
        self._dts: int | None = None
        self.frames: Iterator[av.VideoFrame] | None = None
        self.pending: av.VideoFrame | None = None
        self.last: av.VideoFrame | None = None
        self.position = -(2**62)
        self.target = 0
        self.damaged = False
        self._to_key_packet = False  # after a bad packet: send none until a keyframe's
        self._to_key_frame = False  # after damage: keep no frame until a clean keyframe
        self._in_flight: set[int] = set()  # pts of packets sent whose frames are not out yet
        self._before: set[int] = set()  # frames sent before the damage: they are whole
        self._damage_at: int | None = None  # pts of the first damage since the last seek

    def _damage(self, packet: bool, pts: int | None) -> None:
        """A bad or lost packet: skip packets up to the next keyframe, and keep only the frames
        already in the decoder (a frame references only frames decoded before it). A frame the
        decoder flags corrupt (it may come out late): keep nothing until a clean keyframe."""
        if not self._to_key_frame:
            self._before = set(self._in_flight) if packet else set()
        self.damaged = self._to_key_frame = True
        self._to_key_packet = self._to_key_packet or packet
        if self._damage_at is None:
            self._damage_at = pts

    def _decoded(self) -> Iterator[av.VideoFrame]:
        context = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            lost = self.gap is not None and self._dts is not None and packet.dts is not None
            lost = lost and packet.dts - self._dts > self.gap  # type: ignore[operator]
            self._dts = packet.dts if packet.dts is not None else self._dts
            if lost and not packet.is_keyframe:
                self._damage(True, packet.pts)  # what follows references what was lost
            if self._to_key_packet and packet.size:
                if not packet.is_keyframe:
                    continue
                self._to_key_packet = False
            early = packet.pts is not None and packet.pts < self.target
            context.skip_frame = "NONREF" if early else "DEFAULT"
            if packet.pts is not None and packet.size:
                self._in_flight.add(packet.pts)
            try:
                frames = packet.decode()
            except av.FFmpegError:
                self._in_flight.discard(packet.pts)
                self._damage(True, packet.pts)
                continue
            for frame in frames:
                if frame.pts is not None:  # frames come out in pts order: older ones never will
                    self._in_flight = {p for p in self._in_flight if p > frame.pts}
                if frame.is_corrupt:
                    self._damage(False, frame.pts)
                    continue
                if self._to_key_frame:
                    if frame.pts in self._before:
                        yield frame
                        continue
                    if not frame.key_frame:
                        continue
                    self._to_key_frame = False
                yield frame

    def _seek(self, key_index: int) -> None:
        """Seek so that the first frame decoded is not past the target: the keyframe before it,
        then up to two earlier ones (MPEG-TS lands a GOP late), then the very start. Landing
        late because damage before the target was skipped is accepted: an earlier start cannot
        decode past it."""
        offsets = [self.keys[i] for i in range(key_index, max(-1, key_index - 3), -1)]
        offsets.append(-(2**62))
        for offset in offsets:
            self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
            self.stream.codec_context.flush_buffers()
            self._to_key_packet = self._to_key_frame = False
            self._damage_at = None
            self._dts = None
            self._in_flight.clear()
            self.frames = self._decoded()
            first = next(self.frames, None)
            self.pending = first
            if first is not None and (first.pts is None or first.pts <= self.target):
                return
            at = self._damage_at
            if first is not None and at is not None and at <= self.target:
                return

    def frame_at(self, target: int) -> av.VideoFrame | None:
        """The first clean frame whose pts is ``target`` or later; None past the readable end."""
        if self.last is not None and self.last.pts is not None and self.last.pts >= target:
            return self.last  # found after damage past an earlier target: still the first
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
                self.last = frame
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


@dataclass
class _Sampled:
    slots: list[int | None]
    """Per slice, the pts of the frame sent for it (None: unreadable)."""
    targets: list[int]
    images: dict[int, tuple[bytes, int, int]] = field(default_factory=dict)
    stopped: bool = False
    """Frames stopped decoding before the last target."""
    damaged: bool = False


def _sample(
    container: av.container.InputContainer, stream: av.VideoStream, pts: list[int],
    keys: list[int], step: int, count: int, short_side: int, quality: int,
) -> _Sampled:  # fmt: skip
    targets, ends = _targets(pts, step, count)
    # Without an index (MPEG-TS), lost packets show only as a jump in time: ten frames or more.
    gap = 10 * step if container.format.name in _ESTIMATED else None
    decoder = _Decoder(container, stream, keys or [pts[0]], gap)
    result = _Sampled([], targets)
    for target, end in zip(targets, ends, strict=True):
        if result.stopped:
            result.slots.append(None)
            continue
        try:
            frame = decoder.frame_at(target)
        except (av.FFmpegError, EOFError):  # the demuxer gave up: the end of what can be read
            frame = None
        if frame is None or frame.pts is None:
            result.stopped = True
            result.slots.append(None)
        elif frame.pts > target and frame.pts >= end:
            result.slots.append(None)  # damage covers this slice; the frame is a later one's
        else:
            if frame.pts not in result.images:
                result.images[frame.pts] = _to_jpeg(frame, short_side, quality)
            result.slots.append(frame.pts)
    result.damaged = decoder.damaged
    return result


def _header(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[float | None, int]:
    """Duration (s) and frame count the header claims; None and 0 where it has none or only
    FFmpeg's estimate."""
    if container.format.name in _ESTIMATED:
        return None, 0
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base), stream.frames
    if container.duration:
        return container.duration / 1_000_000, stream.frames
    return None, stream.frames


def sample_frames(
    path: Path | RemoteObject,
    count: int = defaults.VIDEO_FRAMES,
    *,
    short_side: int = defaults.VIDEO_FRAME_SIZE,
    quality: int = defaults.JPEG_QUALITY,
) -> PreparedVideo:
    """``count`` frames of ``path`` sampled uniformly in time, as JPEGs, with metadata."""
    if count < 1:
        raise ValueError("count must be at least 1")
    with contextlib.ExitStack() as stack, _open(path, stack) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "NONE"  # one thread per worker process is cheaper (measured)
        scan = _scan(container, stream)
        pts = scan.pts
        if not pts:
            raise MediaDecodeError(f"{path}: the video stream has no frames; is it complete?")
        time_base = stream.time_base or Fraction(1, 1)
        sampled = _sample(container, stream, pts, scan.keys, scan.step, count, short_side,
                          quality)  # fmt: skip
        damaged = sampled.damaged
        if sampled.stopped:
            # Frames stop decoding before the end (a cut or zeroed tail): sample again over the
            # part that decodes.
            good = [p for p in sampled.slots if p is not None]
            if not good:
                raise MediaDecodeError(f"{path}: no frame decodes; the file is damaged")
            pts = [p for p in pts if p <= max(good)]
            keys = [k for k in scan.keys if k <= pts[-1]]
            sampled = _sample(container, stream, pts, keys, scan.step, count, short_side, quality)
            damaged = True
        header_duration, header_frames = _header(container, stream)
        codec = stream.codec_context.codec.canonical_name  # "av1", not the decoder "libdav1d"
        rate = stream.average_rate or stream.guessed_rate
        index = stream.index if len(container.streams.video) > 1 else None
    sent = [p for p in sampled.slots if p is not None]
    if not sent:
        raise MediaDecodeError(f"{path}: no frame decodes; the file is damaged")
    readable_end = pts[-1] + scan.step
    readable = float((readable_end - pts[0]) * time_base)
    step_s = float(scan.step * time_base)
    truncated = (
        scan.broken
        or header_frames > len(scan.pts)
        or (header_duration is not None and header_duration - readable > 2 * step_s)
    )
    width, height = sampled.images[sent[0]][1:]
    duration = max(readable, header_duration or 0.0) if truncated else readable
    frame_count = max(len(pts), header_frames) if truncated else len(pts)
    meta: dict[str, Any] = {
        "width": width,
        "height": height,
        "duration": round(duration, 3),
        "fps": round(float(rate), 3) if rate else round(len(pts) / readable, 3),
        "frame_count": frame_count,
        "codec": codec,
        "start_time": round(float(pts[0] * time_base), 3),
        "sampled_timestamps": [round(float((p - pts[0]) * time_base), 3) for p in sent],
        "truncated": truncated,
        "damaged": damaged,
    }
    if index is not None:
        meta["stream"] = index
    if truncated or damaged:
        meta["readable_duration"] = round(readable, 3)
        meta["readable_frames"] = len(pts)
    skipped = [t for t, p in zip(sampled.targets, sampled.slots, strict=True) if p is None]
    if skipped:
        meta["skipped_timestamps"] = [round(float((t - pts[0]) * time_base), 3) for t in skipped]
    return PreparedVideo([sampled.images[p][0] for p in sent], meta)
