"""Decoding in worker processes: a slow or hostile file fails alone, on time."""

from __future__ import annotations

import asyncio
import base64
import time

import numpy as np
import pytest
from PIL import Image

from babelcap.benchmarks.synthetic import write_video
from babelcap.client.media import MediaOptions, MediaPool
from babelcap.core.errors import DecodeTimeoutError


def test_a_decode_past_its_deadline_is_killed_and_the_pool_goes_on(tmp_path):
    slow = tmp_path / "slow.png"
    noise = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), np.uint8)
    Image.fromarray(noise).save(slow, compress_level=1)  # seconds to decode and resize
    quick = write_video(tmp_path / "quick.mp4", [(255, 0, 0), (0, 0, 255)])

    async def run():
        pool = MediaPool(workers=1, timeout_s=0.05)
        try:
            started = time.monotonic()
            with pytest.raises(DecodeTimeoutError, match=r"longer than 0\.05 s") as stopped:
                await pool.prepare("image", slow, MediaOptions())
            assert stopped.value.kind == "timeout"  # what its record's error says
            assert time.monotonic() - started < 3
            pool.timeout_s = 60  # the replacement worker takes the next asset
            return await pool.prepare("video", quick, MediaOptions(frames=2, frame_size=64))
        finally:
            pool.close()

    prepared = asyncio.run(run())
    url = prepared.part["video_url"]["url"]
    assert url.startswith("data:video/jpeg;base64,")
    frames = url.split(",", 1)[1].split(",")
    assert len(frames) == 2 and all(base64.b64decode(f)[:3] == b"\xff\xd8\xff" for f in frames)
    assert prepared.meta["size"] == quick.stat().st_size
