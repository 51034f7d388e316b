"""Hostile media and hostile file systems, generated: what real folders hold and naive bulk
tools hang on, crash on or describe wrongly. PyAV and Pillow write every case; the few bytes
neither can write (an MP4 whose cover art comes before its video) are patched in by hand.

:func:`hostile_folder` builds one folder of every case and returns what each file's record
must say, so a test can demand exactly one right record per file.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from PIL import Image

from babelcap.benchmarks.synthetic import write_audio, write_image, write_video
from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS

__all__ = [
    "Expected",
    "hostile_folder",
    "loop_tree",
    "make_fifo",
    "make_socket",
    "mkv_with_cover_track_first",
    "mp4_with_cover_first",
    "rgb",
    "truncate",
    "two_video_streams",
    "unprivileged",
    "zero_middle",
    "zero_span",
]

FOUR = ["red", "green", "blue", "yellow"]


def rgb(*names: str) -> list[tuple[int, int, int]]:
    """The stand-ins' colours by name."""
    return [COLOURS[name] for name in names]


def zero_middle(source: Path, target: Path, start: float = 0.3, end: float = 0.7) -> Path:
    """``source`` with the bytes from ``start`` to ``end`` of its media data zeroed (fractions
    of an MP4's ``mdat`` payload, else of the whole file): its index survives, its middle
    frames do not."""
    data = bytearray(source.read_bytes())
    first, size = 0, len(data)
    offset = 0
    while offset + 8 <= len(data):
        box, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"mdat":
            first, size = offset + 8, box - 8
            break
        if box < 8:
            break
        offset += box
    lo, hi = first + int(size * start), first + int(size * end)
    data[lo:hi] = bytes(hi - lo)
    target.write_bytes(bytes(data))
    return target


def zero_span(source: Path, target: Path, start_s: float, end_s: float) -> Path:
    """``source`` with the bytes of every video packet from ``start_s`` to ``end_s`` zeroed, in
    place: the container's index is intact, those frames are not."""
    data = bytearray(source.read_bytes())
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.pos is None or packet.pos < 0 or not packet.size:
                continue
            if start_s <= float(packet.pts * packet.time_base) < end_s:
                data[packet.pos : packet.pos + packet.size] = bytes(packet.size)
    target.write_bytes(bytes(data))
    return target


def truncate(source: Path, target: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``source``."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _encode(
    stream: av.VideoStream, colour: tuple[int, int, int], count: int, start: int = 0
) -> list[av.Packet]:
    packets: list[av.Packet] = []
    for index in range(start, start + count):
        pixels = np.full((stream.height, stream.width, 3), colour, np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index
        packets += stream.encode(frame)
    return packets


def _stream(container: av.container.OutputContainer, codec: str = "libx264") -> av.VideoStream:
    stream = cast(av.VideoStream, container.add_stream(codec, rate=8))
    stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
    stream.time_base = Fraction(1, 8)
    return stream


def two_video_streams(path: Path, first: list[str], chosen: list[str]) -> Path:
    """Two video streams, one second per colour: the first not default, the second default
    (what FFmpeg, and so every player, shows)."""
    with av.open(str(path), "w") as container:
        streams = [_stream(container), _stream(container)]
        streams[0].disposition = av.stream.Disposition(0)
        streams[1].disposition = av.stream.Disposition.default
        for stream, names in zip(streams, (first, chosen), strict=True):
            index = 0
            for name in names:
                for packet in _encode(stream, COLOURS[name], 8, start=index):
                    container.mux(packet)
                index += 8
            container.mux(stream.encode())
    return path


def mkv_with_cover_track_first(path: Path, cover: str, colours: list[str]) -> Path:
    """An MKV whose first track is a one-frame MJPEG picture (as muxers write cover art) and
    whose second is the video, one second per colour."""
    with av.open(str(path), "w") as container:
        picture = cast(av.VideoStream, container.add_stream("mjpeg"))
        picture.width, picture.height, picture.pix_fmt = 64, 64, "yuvj420p"
        video = _stream(container)
        pixels = np.full((64, 64, 3), COLOURS[cover], np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuvj420p")
        frame.pts = 0
        for packet in picture.encode(frame) + picture.encode():
            container.mux(packet)
        index = 0
        for name in colours:
            for _ in range(8):
                still = np.full((96, 128, 3), COLOURS[name], np.uint8)
                moving = av.VideoFrame.from_ndarray(still, format="rgb24")
                moving.pts = index
                container.mux(video.encode(moving))
                index += 1
        container.mux(video.encode())
    return path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4_with_cover_first(path: Path, cover: str, colours: list[str]) -> Path:
    """An MP4 whose iTunes cover art (``moov/udta/meta/ilst/covr``) comes before its track, so
    FFmpeg lists the cover as video stream 0 (an attached picture) and the video as stream 1."""
    write_video(path, rgb(*colours))
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"moov":
            break
        offset += size
    assert kind == b"moov" and offset + size == len(data), "moov must be last"
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), COLOURS[cover]).save(jpeg, "JPEG")
    covr = _box(b"covr", _box(b"data", struct.pack(">II", 13, 0) + jpeg.getvalue()))
    hdlr = _box(b"hdlr", bytes(8) + b"mdirappl" + bytes(9))
    udta = _box(b"udta", _box(b"meta", bytes(4) + hdlr + _box(b"ilst", covr)))
    path.write_bytes(data[:offset] + _box(b"moov", udta + data[offset + 8 :]))
    return path


def make_fifo(path: Path) -> Path:
    """A named pipe no one writes to: opening it for reading blocks forever."""
    os.mkfifo(path)
    return path


def make_socket(path: Path) -> Path:
    """A UNIX socket file (opening it fails with ENXIO)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.close()  # the file stays
    return path


def loop_tree(root: Path) -> Path:
    """A folder with one image and two symlinks back up the tree: ``**`` over it expands into
    about 2^depth paths in Python's glob."""
    (root / "a").mkdir(parents=True)
    write_image(root / "a" / "photo.jpg", (32, 32), COLOURS["red"])
    (root / "a" / "up").symlink_to(root)
    (root / "a" / "again").symlink_to(root / "a")
    return root


def unprivileged() -> list[str] | None:
    """An argv prefix that runs a command without the capabilities that let root read every
    file (``setpriv``, still as root, so the venv and temporary folders stay readable); [] when
    not root; None when it cannot be done here."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "pass"], capture_output=True,
                           timeout=30)  # fmt: skip
    return prefix if probe.returncode == 0 else None


@dataclass
class Expected:
    """What the record of one file must say."""

    status: str
    kind: str | None
    message: str = ""
    """A fragment of the error message."""
    colours: list[str] = field(default_factory=list)
    """An ok record: the colours its media shows, in order."""
    media: dict[str, object] = field(default_factory=dict)
    """An ok record: values its ``media`` must hold."""


def hostile_folder(root: Path) -> tuple[dict[str, Expected], dict[str, int]]:
    """Every hostile case in one folder (some in ``nested/``). Returns the records expected by
    file name and the skips expected by reason."""
    nested = root / "nested"
    nested.mkdir(parents=True)
    expected: dict[str, Expected] = {}

    def ok(name: str, kind: str, colours: list[str], **media: object) -> None:
        expected[name] = Expected("ok", kind, colours=colours, media=media)

    def error(name: str, kind: str | None, message: str) -> None:
        expected[name] = Expected("error", kind, message)

    # Special files and symlinks: never opened, skipped (or, if broken, an error record).
    make_fifo(root / "pipe.mp4")
    make_socket(nested / "control.sock")
    (root / "zero.mp4").symlink_to("/dev/zero")  # a character device that never ends
    (nested / "up").symlink_to(root)  # a folder loop
    (root / "self.jpg").symlink_to(root / "self.jpg")  # a file loop
    error("self.jpg", None, "symlink loop")
    # Videos: damage, truncation, stream choice, codec names.
    four = write_video(root / "plain.mp4", rgb(*FOUR), fps=12, gop=12)
    zero_span(four, root / "damaged-middle.mp4", 1.0, 3.0)
    four.unlink()
    ok("damaged-middle.mp4", "video", ["red", "yellow"], damaged=True, truncated=False,
       duration=4.0)  # fmt: skip
    faststart = write_video(root / "fs.mp4", rgb(*FOUR), fps=12, gop=12,
                            container_options={"movflags": "+faststart"})  # fmt: skip
    truncate(faststart, nested / "cut-faststart.mp4", 0.9)
    faststart.unlink()
    # What survives the cut depends on the encoder's byte layout: the record's figures, not its
    # colours, are checked.
    ok("cut-faststart.mp4", "video", [], truncated=True, duration=4.0, frame_count=48)
    two_video_streams(root / "two-streams.mp4", first=FOUR, chosen=FOUR[::-1])
    ok("two-streams.mp4", "video", FOUR[::-1], stream=1)
    mp4_with_cover_first(root / "cover-first.mp4", cover="purple", colours=FOUR[1:] + FOUR[:1])
    ok("cover-first.mp4", "video", FOUR[1:] + FOUR[:1], stream=1)
    mkv_with_cover_track_first(
        nested / "cover-track.mkv", cover="purple", colours=FOUR[2:] + FOUR[:2]
    )
    ok("cover-track.mkv", "video", FOUR[2:] + FOUR[:2], stream=1)
    write_video(root / "av1.mkv", rgb("green", "red", "yellow", "blue"), codec="libsvtav1",
                options={"svtav1-params": "lp=1"})  # fmt: skip
    ok("av1.mkv", "video", ["green", "red", "yellow", "blue"], codec="av1")
    write_audio(root / "voice.m4a")
    error("voice.m4a", "video", "no video stream")
    # Images Pillow reads but no magic table lists, and their cousins.
    for name, colour in (("icon.ico", "red"), ("photo.ppm", "green"), ("gray.pgm", "black"),
                         ("shot.tga", "blue"), ("scan.pcx", "yellow"), ("pic.sgi", "purple"),
                         ("frame.qoi", "orange")):  # fmt: skip
        Image.new("RGB", (48, 32), COLOURS[colour]).convert(
            "L" if name.endswith(".pgm") else "RGB"
        ).save(root / name)
        ok(name, "image", [colour])
    (root / "tga-without-suffix").write_bytes((root / "shot.tga").read_bytes())  # no signature
    (nested / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', "utf-8")
    error("logo.svg", "image", "SVG")
    # Extreme aspect ratios: split into pieces, not sent as strips.
    write_image(root / "banner.png", (20000, 50), COLOURS["red"], format="PNG")
    ok("banner.png", "image", ["red"], split={"pieces": 20, "stacked": "top to bottom"})
    write_image(nested / "tower.png", (50, 20000), COLOURS["blue"], format="PNG")
    ok("tower.png", "image", ["blue"], split={"pieces": 20, "stacked": "left to right"})
    (root / "notes.txt").write_text("not media", encoding="utf-8")
    skipped = {"not a regular file": 3, "symlink loop": 1, "not media": 2}
    return expected, skipped
