"""``babelcap demo``: the embedded default job on the tiny CPU stack, end to end.

Starts real ``vllm serve`` processes for the tiny Mllama and LLaVA-NeXT-Video stand-ins, captions
each image (as a JPEG data URL) and each video (frames sampled uniformly in time, sent as
``data:video/jpeg;base64,<f1>,<f2>,...``) concurrently, translates every caption with the
translation engine (tiny NLLB, CTranslate2), and writes one JSON line per asset. The full bulk
client (``babelcap caption``) replaces this walk-through; its media handling is minimal.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import av
import httpx
from PIL import Image, ImageOps

from client.errors import BabelcapError, MediaDecodeError

__all__ = ["caption_files", "discover", "run_demo"]

log = logging.getLogger(__name__)

_IMAGE_MODEL, _VIDEO_MODEL = "tiny-mllama", "tiny-llava-next-video"
_PROMPTS = {"image": "Describe this image.", "video": "Describe this video."}
_VIDEO_FRAMES = 4


def _kind(path: Path) -> str | None:
    """``image``, ``video`` or None, decided by content rather than extension."""
    try:
        with Image.open(path) as image:
            image.verify()
        return "image"
    except (OSError, SyntaxError, Image.DecompressionBombError):
        pass
    try:
        with av.open(str(path)) as container:
            # FFmpeg guesses a demuxer from the extension (any *.jpg "is" an image2 video):
            # only a stream that decodes a frame counts.
            if container.format.name == "image2" or not container.streams.video:
                return None
            next(container.decode(video=0))
            return "video"
    except (av.FFmpegError, StopIteration):
        return None


def _jpeg(image: Image.Image, longest: int = 448) -> str:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    image = image.convert("RGB")
    image.thumbnail((longest, longest))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_part(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with Image.open(path) as image:
        meta = {"width": image.width, "height": image.height}
        url = "data:image/jpeg;base64," + _jpeg(image)
    return {"type": "image_url", "image_url": {"url": url}}, meta


def _video_part(path: Path, count: int = _VIDEO_FRAMES) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample ``count`` frames at the centres of equal time slices (a small clip: decode all)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded: list[tuple[float, Image.Image]] = [
            (float(frame.time or 0.0), frame.to_image())  # type: ignore[no-untyped-call]
            for frame in container.decode(stream)
        ]
    if not decoded:
        raise MediaDecodeError(f"{path}: no decodable video frames; is the file complete?")
    start, last = decoded[0][0], decoded[-1][0]
    step = (last - start) / max(1, len(decoded) - 1)
    duration = last - start + step
    targets = [start + (i + 0.5) * duration / count for i in range(count)]
    chosen = [min(decoded, key=lambda item: abs(item[0] - target)) for target in targets]
    frames = ",".join(_jpeg(image, 336) for _, image in chosen)
    width, height = decoded[0][1].size
    meta = {
        "width": width,
        "height": height,
        "duration": round(duration, 3),
        "frame_count": len(decoded),
        "sampled_timestamps": [round(t, 3) for t, _ in chosen],
    }
    return {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + frames}}, meta


async def _caption(
    client: httpx.AsyncClient, urls: dict[str, str], path: Path, kind: str
) -> dict[str, Any]:
    started = time.perf_counter()
    record: dict[str, Any] = {"path": str(path), "kind": kind, "status": "ok", "error": None}
    try:
        builder = _image_part if kind == "image" else _video_part
        part, meta = await asyncio.to_thread(builder, path)
        model = _IMAGE_MODEL if kind == "image" else _VIDEO_MODEL
        body = {
            "model": model,
            "messages": [
                {"role": "user", "content": [part, {"type": "text", "text": _PROMPTS[kind]}]}
            ],
            "max_tokens": 64,
            "temperature": 0,
        }
        response = await client.post(f"{urls[model]}/chat/completions", json=body)
        response.raise_for_status()
        answer = response.json()
        record |= {
            **meta,
            "size": path.stat().st_size,
            "model": model,
            "description": answer["choices"][0]["message"]["content"].strip(),
            "usage": answer["usage"],
        }
    except (BabelcapError, httpx.HTTPError, av.FFmpegError, OSError) as error:
        record |= {
            "status": "error",
            "error": {"kind": type(error).__name__, "message": str(error)},
        }
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _translate(records: list[dict[str, Any]], languages: list[str]) -> None:
    """Translate every caption into every language with the translation engine (one batch)."""
    from converters.tiny.common import ARTIFACTS
    from server.translation import TranslationEngine, TranslationSettings

    done = [r for r in records if r["status"] == "ok"]

    async def run() -> dict[str, list[str]]:
        engine = TranslationEngine(TranslationSettings(model=ARTIFACTS / "nllb-ct2"))
        try:
            return (await engine.translate([r["description"] for r in done], languages)).texts
        finally:
            await engine.aclose()

    for language, outputs in asyncio.run(run()).items():
        for record, text in zip(done, outputs, strict=True):
            record.setdefault("translations", {})[language] = text


async def _caption_all(paths: list[tuple[Path, str]], urls: dict[str, str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=120.0) as client:
        return list(await asyncio.gather(*(_caption(client, urls, p, k) for p, k in paths)))


def caption_files(
    assets: list[tuple[Path, str]], urls: dict[str, str], languages: list[str]
) -> list[dict[str, Any]]:
    """Caption ``(path, kind)`` assets against running servers (model name -> base URL) and
    translate the captions into ``languages``; one record per asset, in input order."""
    records = asyncio.run(_caption_all(assets, urls))
    if languages:
        _translate(records, languages)
    return records


def discover(media: list[Path]) -> tuple[list[tuple[Path, str]], int]:
    """Files under ``media`` that are images or videos (by content), and how many were not."""
    files = sorted(
        {f for m in media for f in ([m] if m.is_file() else m.rglob("*")) if f.is_file()}
    )
    found = [(path, kind) for path in files if (kind := _kind(path))]
    return found, len(files) - len(found)


def run_demo(
    media: list[Path], output: Path, languages: list[str], startup_timeout: float = 600.0
) -> int:
    """Run the demo; returns the exit code (0 when every asset was captioned)."""
    from server.vllm_process import VllmProcess, tiny_cpu_backends

    missing = [str(m) for m in media if not m.exists()]
    if missing:
        log.error("not found: %s", ", ".join(missing))
        return 2
    assets, skipped = discover(media)
    log.info("%d media files (%d non-media skipped)", len(assets), skipped)
    logs = output.parent / "logs"
    processes = [VllmProcess(b, log_file=logs / f"{b.name}.log") for b in tiny_cpu_backends()]
    started = time.perf_counter()
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready(timeout=startup_timeout)
        log.info("servers ready in %.1f s", time.perf_counter() - started)
        urls = {process.backend.name: process.base_url for process in processes}
        batch_started = time.perf_counter()
        records = caption_files(assets, urls, languages)
        batch_seconds = time.perf_counter() - batch_started
    except BabelcapError as error:
        log.error("%s", error)
        return 1
    finally:
        for process in processes:
            process.stop()
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".partial")
    with temporary.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    temporary.replace(output)
    failed = sum(r["status"] != "ok" for r in records)
    for record in records:
        summary = record.get("description") or record["error"]["message"]
        sys.stdout.write(f"{record['kind']:5} {Path(record['path']).name}: {summary}\n")
        for lang, text in record.get("translations", {}).items():
            sys.stdout.write(f"      {lang}: {text}\n")
    sys.stdout.write(
        f"{len(records)} assets, {failed} failed, {batch_seconds:.2f} s for the batch; "
        f"results in {output}\n"
    )
    return 1 if failed else 0
