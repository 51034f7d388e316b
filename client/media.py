"""Decode media in worker processes, each asset under a hard timeout.

Decoding is CPU-bound and can hang on hostile files, so it runs in a ``pebble`` process pool:
a worker that passes ``decode_timeout_s`` is killed and replaced, and only that asset fails.
Workers start from a clean ``forkserver`` (no inherited event loop or sockets) and use one
decoding thread each (measured cheaper than threaded decoding when seeking).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import concurrent.futures.process
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pebble

from babelcap.client.discover import HEAD_BYTES, sniff
from babelcap.client.storage import RemoteObject, open_object
from babelcap.core import defaults
from babelcap.core.errors import DecodeTimeoutError, MediaDecodeError

__all__ = ["MediaOptions", "MediaPool", "Prepared", "prepare"]


@dataclass(frozen=True)
class MediaOptions:
    """How media is prepared for the models (from the server's hints and the settings)."""

    tile_size: int = defaults.IMAGE_TILE_SIZE
    max_tiles: int = defaults.IMAGE_MAX_TILES
    frames: int = defaults.VIDEO_FRAMES
    frame_size: int = defaults.VIDEO_FRAME_SIZE
    max_pixels: int = defaults.MAX_PIXELS
    quality: int = defaults.JPEG_QUALITY


@dataclass(frozen=True)
class Prepared:
    """The chat-message media part and the media metadata."""

    part: dict[str, Any]
    meta: dict[str, Any]


def _data_url(mime: str, payloads: list[bytes]) -> str:
    return f"data:{mime};base64," + ",".join(base64.b64encode(p).decode("ascii") for p in payloads)


def _check_kind(kind: str, item: RemoteObject) -> None:
    """A listed object's kind came from its name: its first bytes must agree."""
    with open_object(item) as handle:
        head = handle.read(HEAD_BYTES)
    found = sniff(head, item.suffix)
    if found != kind:
        what = f"{found} data" if found else "empty" if not head else "not a known media format"
        raise MediaDecodeError(
            f"{item} is named like {kind} media but its content is {what}; rename the object "
            "or check that it is complete"
        )


def prepare(kind: str, path: Path | RemoteObject, options: MediaOptions) -> Prepared:
    """Decode one asset (in a worker process) into the message part the model takes."""
    if isinstance(path, RemoteObject):
        _check_kind(kind, path)
        size = path.size
    else:
        size = path.stat().st_size
    if kind == "image":
        from PIL import Image

        from babelcap.client.images import prepare_image

        # This is a decoding worker, not the user's process: Pillow's own refusal (at twice
        # its limit) follows --max-pixels here, so a raised cap is honoured.
        Image.MAX_IMAGE_PIXELS = options.max_pixels
        image = prepare_image(
            path,
            tile_size=options.tile_size,
            max_tiles=options.max_tiles,
            max_pixels=options.max_pixels,
            quality=options.quality,
        )
        part = {"type": "image_url", "image_url": {"url": _data_url("image/jpeg", [image.jpeg])}}
        return Prepared(part, {"size": size, **image.meta})
    from babelcap.client.frames import sample_frames

    video = sample_frames(
        path, options.frames, short_side=options.frame_size, quality=options.quality
    )
    part = {"type": "video_url", "video_url": {"url": _data_url("video/jpeg", video.frames)}}
    return Prepared(part, {"size": size, **video.meta})


class MediaPool:
    """A process pool for :func:`prepare` with a per-asset hard timeout."""

    def __init__(self, workers: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        context = multiprocessing.get_context("forkserver")
        # The fork server imports the decoders once; each worker (and each replacement of a
        # killed one) is then a cheap fork of it.
        context.set_forkserver_preload(
            ["babelcap.client.images", "babelcap.client.frames", "babelcap.client.media"]
        )
        self._pool = pebble.ProcessPool(max_workers=workers, context=context)

    async def prepare(
        self, kind: str, path: Path | RemoteObject, options: MediaOptions
    ) -> Prepared:
        """Prepare ``path`` in a worker; a timeout kills the worker and fails this asset only."""
        future = self._pool.schedule(prepare, args=(kind, path, options), timeout=self.timeout_s)
        try:
            result: Prepared = await asyncio.wrap_future(future)
        except Exception as error:
            raise self._failure(path, error) from error
        return result

    def prepare_blocking(
        self, kind: str, path: Path | RemoteObject, options: MediaOptions
    ) -> Prepared:
        """:meth:`prepare` for a caller without an event loop (a Ray Data stage)."""
        future = self._pool.schedule(prepare, args=(kind, path, options), timeout=self.timeout_s)
        try:
            result: Prepared = future.result()
        except Exception as error:
            raise self._failure(path, error) from error
        return result

    def _failure(self, path: Path | RemoteObject, error: Exception) -> Exception:
        """The asset's error for what the worker raised (a timeout, a crash, a decoder error)."""
        if isinstance(error, concurrent.futures.TimeoutError):
            return DecodeTimeoutError(
                f"{path}: decoding took longer than {self.timeout_s:g} s and was stopped; "
                "raise --decode-timeout-s for very large files"
            )
        if isinstance(error, pebble.ProcessExpired):
            return MediaDecodeError(
                f"{path}: the decoder crashed (exit code {error.exitcode}); the file is damaged "
                "or hostile"
            )
        if isinstance(error, concurrent.futures.process.BrokenProcessPool):
            return MediaDecodeError(
                f"{path}: the decoding worker processes could not start ({error}); run babelcap "
                "from a script or the command line, not from standard input"
            )
        if isinstance(error, MediaDecodeError):
            return error
        if isinstance(error, OSError) and isinstance(path, RemoteObject):
            # the store failed mid-read (the object changed, a connection dropped)
            return MediaDecodeError(f"{path}: cannot read it from the store: {error}")
        # anything a decoder library raised: this asset's failure
        return MediaDecodeError(f"{path}: cannot decode it: {type(error).__name__}: {error}")

    def close(self) -> None:
        """Stop the workers (waiting for none)."""
        self._pool.stop()  # type: ignore[no-untyped-call]
        self._pool.join(timeout=10)
