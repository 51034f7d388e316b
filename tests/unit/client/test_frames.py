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
from tests.media_fixtures import (
    mkv_with_cover_track_first,
    mp4_with_cover_first,
    rgb,
    truncate,
    two_video_streams,
    zero_middle,
    zero_span,
)

FOUR = ["red", "green", "blue", "yellow"]


def _distance(one, other):
    return sum((a - b) ** 2 for a, b in zip(one, other, strict=True))


def _names(prepared, mean=False):
    """Each frame's colour (its centre pixel, or its mean for textured frames), repeats of the
    previous frame's colour dropped when ``mean``."""
    names = []
    for jpeg in prepared.frames:
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        if mean:
            colour = image.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        else:
            colour = image.getpixel((image.width // 2, image.height // 2))
        names.append(min(COLOURS, key=lambda c: _distance(COLOURS[c], colour)))
    if mean:
        names = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
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


@pytest.mark.parametrize("fraction", [0.5, 0.9])  # 0.9: every packet it has is whole
def test_truncated_faststart_mp4_is_flagged_with_the_headers_duration(tmp_path, fraction):
    path = write_video(tmp_path / "fs.mp4", [COLOURS[c] for c in FOUR], fps=12, gop=12,
                       textured=True, container_options={"movflags": "+faststart"})  # fmt: skip
    cut = truncate(path, tmp_path / "cut.mp4", fraction)
    prepared = sample_frames(cut, 4, short_side=64)
    meta = prepared.meta
    assert meta["truncated"] is True
    assert (meta["duration"], meta["frame_count"]) == (4.0, 48)  # the header's
    assert 0 < meta["readable_duration"] < 4.0 and meta["readable_frames"] < 48  # what was read
    assert len(prepared.frames) == 4
    assert max(meta["sampled_timestamps"]) < meta["readable_duration"]


def test_a_complete_file_is_neither_truncated_nor_damaged(tmp_path):
    meta = sample_frames(write_video(tmp_path / "v.mp4", rgb(*FOUR)), 4, short_side=64).meta
    assert meta["truncated"] is False and meta["damaged"] is False
    assert "readable_duration" not in meta and "skipped_timestamps" not in meta


@pytest.mark.timeout(60)
def test_a_zeroed_middle_is_skipped_not_taken_as_the_end(tmp_path):
    # The case: 40% of a (textured, realistic-size) MP4 zeroed in the middle.
    path = write_video(tmp_path / "v.mp4", rgb(*FOUR), fps=12, gop=12, textured=True)
    damaged = zero_middle(path, tmp_path / "zeroed.mp4", 0.3, 0.7)
    prepared = sample_frames(damaged, 4, short_side=64)
    assert _names(prepared, mean=True) == ["red", "yellow"]  # was: red, red, red, red
    meta = prepared.meta
    assert meta["damaged"] is True and meta["truncated"] is False
    assert meta["sampled_timestamps"] == [0.5, 3.5]
    assert meta["skipped_timestamps"] == [1.5, 2.5]
    assert (meta["duration"], meta["frame_count"]) == (4.0, 48)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("suffix", "expected"), [(".mp4", ["red", "yellow"]),
                                                   (".ts", ["red", "red", "yellow"])])  # fmt: skip
def test_lost_frames_in_the_middle_are_left_out(tmp_path, suffix, expected):
    path = write_video(tmp_path / f"v{suffix}", rgb(*FOUR), fps=12, gop=12)
    damaged = zero_span(path, tmp_path / f"d{suffix}", 1.0, 3.0)
    prepared = sample_frames(damaged, 4, short_side=64)
    # MPEG-TS drops the damaged packets: the frames after the gap that reference them are
    # concealed copies of red, not blue; they are skipped up to yellow's keyframe.
    assert _names(prepared) == expected
    assert prepared.meta["damaged"] is True


def test_the_default_stream_is_captioned_not_the_first(tmp_path):
    path = two_video_streams(tmp_path / "two.mp4", first=["red", "green"],
                             chosen=["blue", "yellow"])  # fmt: skip
    prepared = sample_frames(path, 2, short_side=64)
    assert _names(prepared) == ["blue", "yellow"] and prepared.meta["stream"] == 1


@pytest.mark.parametrize("maker", [mp4_with_cover_first, mkv_with_cover_track_first])
def test_a_cover_image_before_the_video_is_not_captioned(tmp_path, maker):
    path = maker(tmp_path / ("c.mp4" if maker is mp4_with_cover_first else "c.mkv"),
                 cover="green", colours=["red", "blue"])  # fmt: skip
    prepared = sample_frames(path, 2, short_side=64)
    assert _names(prepared) == ["red", "blue"] and prepared.meta["stream"] == 1
    assert prepared.meta["duration"] == 2.0


def test_a_cover_image_alone_is_no_video(tmp_path):
    path = mp4_with_cover_first(tmp_path / "c.mp4", cover="green", colours=["red"])
    with av.open(str(path)) as container:
        assert container.streams.video[0].disposition & av.stream.Disposition.attached_pic
    audio = write_audio(tmp_path / "a.mp4", frames=10)
    # Put the cover into the audio-only file: a podcast episode with its artwork.
    covered = tmp_path / "podcast.m4a"
    data, cover = audio.read_bytes(), path.read_bytes()
    start = cover.index(b"udta") - 4
    size = int.from_bytes(cover[start : start + 4], "big")
    moov = data.index(b"moov") - 4
    assert moov + int.from_bytes(data[moov : moov + 4], "big") == len(data)
    udta = cover[start : start + size]
    grown = (len(data) - moov + len(udta)).to_bytes(4, "big")
    covered.write_bytes(data[:moov] + grown + b"moov" + udta + data[moov + 8 :])
    with pytest.raises(MediaDecodeError, match=r"no video stream \(it has audio and a cover"):
        sample_frames(covered, 2)


def test_av1_reports_its_codec_not_its_decoder(tmp_path):
    path = write_video(tmp_path / "v.mkv", rgb("green", "red"), codec="libsvtav1",
                       options={"svtav1-params": "lp=1"})  # fmt: skip
    prepared = sample_frames(path, 2, short_side=64)
    assert prepared.meta["codec"] == "av1" and _names(prepared) == ["green", "red"]


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
