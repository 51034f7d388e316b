"""Frame sampling: uniform in time, right frames on every container, honest about damage."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from babelcap.benchmarks.synthetic import write_audio, write_video
from babelcap.client.frames import sample_frames
from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
from babelcap.core.errors import MediaDecodeError

FOUR = ["red", "green", "blue", "yellow"]


def _distance(one, other):
    return sum((a - b) ** 2 for a, b in zip(one, other, strict=True))


def _names(prepared):
    names = []
    for jpeg in prepared.frames:
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        rgb = image.getpixel((image.width // 2, image.height // 2))
        names.append(min(COLOURS, key=lambda c: _distance(COLOURS[c], rgb)))
    return names


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [(".mp4", "libx264"), (".mkv", "libx264"), (".webm", "libvpx-vp9"), (".ts", "mpeg2video"),
     (".ts", "libx264"), (".mov", "libx264")],
)  # fmt: skip
def test_frames_are_the_centres_of_equal_time_slices(tmp_path, suffix, codec):
    path = write_video(tmp_path / f"v{suffix}", [COLOURS[c] for c in FOUR], fps=12, gop=12,
                       codec=codec)  # fmt: skip
    prepared = sample_frames(path, 4, short_side=64)
    assert _names(prepared) == FOUR  # MPEG-TS seeks land late: this is what the check buys
    meta = prepared.meta
    assert meta["sampled_timestamps"] == [0.5, 1.5, 2.5, 3.5]
    assert meta["duration"] == 4.0 and meta["frame_count"] == 48 and meta["fps"] == 12.0
    assert (meta["width"], meta["height"]) == (128, 96) and not meta["truncated"]
    eight = sample_frames(path, 8, short_side=64)
    assert _names(eight) == [c for c in FOUR for _ in range(2)]


def test_mpeg_ts_keeps_its_start_time(tmp_path):
    path = write_video(tmp_path / "v.ts", [COLOURS["red"]], fps=12, codec="mpeg2video")
    assert sample_frames(path, 2, short_side=64).meta["start_time"] > 0


def test_rotation_metadata_is_applied(tmp_path):
    path = write_video(tmp_path / "r.mp4", [COLOURS["red"]], size=(128, 64), rotation=90)
    prepared = sample_frames(path, 2, short_side=64)
    assert Image.open(io.BytesIO(prepared.frames[0])).size == (64, 128)
    assert (prepared.meta["width"], prepared.meta["height"]) == (64, 128)


def test_frames_are_resized_to_the_model_frame_size(tmp_path):
    path = write_video(tmp_path / "hd.mp4", [COLOURS["blue"]], size=(640, 360), fps=4)
    prepared = sample_frames(path, 2, short_side=336)
    assert Image.open(io.BytesIO(prepared.frames[0])).size == (597, 336)


def test_a_one_frame_video(tmp_path):
    path = write_video(tmp_path / "one.mp4", [COLOURS["green"]], seconds_each=1 / 8)
    prepared = sample_frames(path, 4, short_side=64)
    assert _names(prepared) == ["green"] * 4
    assert prepared.meta["frame_count"] == 1


def test_variable_frame_rate(tmp_path):
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        # red: 10 frames over 0-1 s; blue: 40 frames over 1-2 s (4x the rate)
        times = [i * 100 for i in range(10)] + [1000 + i * 25 for i in range(40)]
        for pts in times:
            rgb = COLOURS["red"] if pts < 1000 else COLOURS["blue"]
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), rgb, np.uint8), "rgb24")
            frame.pts = pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    prepared = sample_frames(path, 4, short_side=64)
    assert _names(prepared) == ["red", "red", "blue", "blue"]  # uniform in time, not in frames


def test_truncated_faststart_mp4_samples_the_readable_part(tmp_path):
    path = write_video(tmp_path / "fs.mp4", [COLOURS[c] for c in FOUR], fps=12, gop=12,
                       textured=True, container_options={"movflags": "+faststart"})  # fmt: skip
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    prepared = sample_frames(cut, 4, short_side=64)
    assert prepared.meta["truncated"]
    assert prepared.meta["duration"] < 4.0
    assert len(prepared.frames) == 4


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path):
    path = write_video(tmp_path / "v.mp4", [COLOURS["red"]] * 2)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MediaDecodeError, match="faststart"):
        sample_frames(cut, 4)


def test_audio_only_file_is_a_clear_error(tmp_path):
    path = write_audio(tmp_path / "audio.mp4", frames=10)
    with pytest.raises(MediaDecodeError, match=r"no video stream .*audio"):
        sample_frames(path, 4)
