"""Load shapes for ``babelcap bench`` (the workload is declared in benchmarks/workload.py).

A load level drives the real ``babelcap caption`` client
(``client.runner.caption``) with a concurrency limit, optionally feeding assets as a Poisson
process, for a number of assets or a duration, and records every request and asset through
the runner's hooks. The vLLM backends' own counters are scraped before and after each level
(through the gateway's ``/metrics/backends/<model>``), and their gauges sampled during it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx

from babelcap.benchmarks.metrics import LevelMetrics, RequestSample, prometheus_values
from babelcap.benchmarks.workload import Workload
from babelcap.client.config import CaptionSettings
from babelcap.client.records import ResultRecord
from babelcap.client.requests import Completion, by_role, media_hints, role_of
from babelcap.client.runner import Hooks, caption
from babelcap.core import defaults
from babelcap.server.gpu import nvidia_smi

__all__ = ["original_loop", "redact", "run_level", "sequential_level"]


async def _scrape(client: httpx.AsyncClient, base: str, models: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in models:
        try:
            response = await client.get(f"{base}/metrics/backends/{model}")
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            found[model] = prometheus_values(response.text)
    return found


_GAUGES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:num_requests_waiting")


def _gpu_memory_mib() -> float | None:
    used = nvidia_smi("memory.used", units=False)
    try:
        return sum(float(v) for v in used.split()) if used is not None else None
    except ValueError:
        return None


async def _sample(
    client: httpx.AsyncClient, base: str, models: list[str], peaks: dict[str, float],
    stop: asyncio.Event,
) -> None:  # fmt: skip
    while not stop.is_set():
        for model, values in (await _scrape(client, base, models)).items():
            for gauge in _GAUGES:
                if gauge in values:
                    key = f"{model}/{gauge}"
                    peaks[key] = max(peaks.get(key, 0.0), values[gauge])
        memory = await asyncio.to_thread(_gpu_memory_mib)
        if memory is not None:
            peaks["gpu_memory_used_mib"] = max(peaks.get("gpu_memory_used_mib", 0.0), memory)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def _server_figures(
    before: dict[str, Any], after: dict[str, Any], peaks: dict[str, float]
) -> dict[str, Any]:
    figures: dict[str, Any] = {"models": {}, "peaks": peaks}
    prompt = generated = 0.0
    for model, end in after.items():
        start = before.get(model, {})

        def delta(name: str, end: dict[str, float] = end, start: dict[str, Any] = start) -> float:
            return float(end.get(name, 0.0) - start.get(name, 0.0))

        hits_name = "vllm:prefix_cache_hits_total"
        if hits_name not in end:
            hits_name = "vllm:gpu_prefix_cache_hits_total"
        queries = delta(hits_name.replace("hits", "queries"))
        queue_count = delta("vllm:request_queue_time_seconds_count")
        model_figures: dict[str, Any] = {
            "prompt_tokens": delta("vllm:prompt_tokens_total"),
            "generation_tokens": delta("vllm:generation_tokens_total"),
            "requests": delta("vllm:request_success_total"),
            "queue_time_mean_s": (
                delta("vllm:request_queue_time_seconds_sum") / queue_count if queue_count else None
            ),
            "prefix_cache_hit_rate": delta(hits_name) / queries if queries else None,
            "preemptions": delta("vllm:num_preemptions_total"),
        }
        figures["models"][model] = model_figures
        prompt += model_figures["prompt_tokens"]
        generated += model_figures["generation_tokens"]
    figures["prompt_tokens"], figures["generation_tokens"] = prompt, generated
    return figures


async def run_level(
    base: str,
    folder: Path,
    workload: Workload,
    *,
    concurrency: int,
    rate: float | None,
    api_key: str | None,
    scratch: Path,
) -> tuple[LevelMetrics, dict[str, Any]]:
    """One measured level: the real client over ``folder``; returns its metrics and the
    server-side figures (counter deltas and gauge peaks)."""
    metrics = LevelMetrics()

    def observe(record: ResultRecord, completions: dict[str, Completion]) -> None:
        metrics.assets.append(record)
        for task, done in completions.items():
            sample = RequestSample.from_completion(record.path, task, record.model or "", done)
            metrics.requests.append(sample)

    settings = CaptionSettings(
        server=[base], api_key=api_key, tasks=list(workload.tasks),
        languages=list(workload.languages), output=scratch / f"c{concurrency}.jsonl",
        overwrite=True, quiet=True, concurrency=concurrency,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        listed = (await client.get(f"{base}/v1/models")).json()["data"]
        models = [m["id"] for m in listed if role_of(m) in ("image", "video")]
        before = await _scrape(client, base, models)
        stop, peaks = asyncio.Event(), dict[str, float]()
        sampler = asyncio.create_task(_sample(client, base, models, peaks, stop))
        started = time.perf_counter()
        hooks = Hooks(
            observer=observe, max_assets=workload.assets, stop_after_s=workload.duration_s,
            rate_per_s=rate, seed=workload.seed,
        )  # fmt: skip
        await caption(settings, [str(folder)], hooks)
        metrics.wall_s = time.perf_counter() - started
        stop.set()
        await sampler
        after = await _scrape(client, base, models)
    return metrics, _server_figures(before, after, peaks)


def _naive_image(path: Path) -> str:
    from PIL import Image

    image = Image.open(path).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=defaults.JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _naive_video(path: Path, count: int) -> str:
    from babelcap.benchmarks.baseline import decode_everything

    frames = []
    for image in decode_everything(path, count):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=defaults.JPEG_QUALITY)
        frames.append(base64.b64encode(buffer.getvalue()).decode())
    return "data:video/jpeg;base64," + ",".join(frames)


def original_loop(
    base: str, paths: list[Path], tasks: list[str], languages: list[str], *,
    api_key: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The original article's loop: one asset, one request, one language at a time; images
    decoded whole, videos decoded frame by frame up to the last sampled one; each task's text
    translated whole, one language per request. Returns wall time, assets and output tokens."""
    from babelcap.prompts import load_prompts

    prompts = load_prompts()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    tokens = 0
    started = time.perf_counter()
    with httpx.Client(timeout=600, headers=headers) as client:
        listed = client.get(f"{base}/v1/models").json()["data"]
        roles = by_role(listed)
        frames = media_hints(roles.get("video")).get("frames", defaults.VIDEO_FRAMES)
        for path in paths:
            kind = "video" if path.suffix in (".mp4", ".mkv", ".webm") else "image"
            if kind == "image":
                part = {"type": "image_url", "image_url": {"url": _naive_image(path)}}
            else:
                part = {"type": "video_url", "video_url": {"url": _naive_video(path, frames)}}
            for task in tasks:
                prompt = prompts[task]
                body = {
                    "model": roles[kind]["id"],
                    "messages": prompt.messages(kind, part, {"frames": frames, "duration": 4.0}),
                    "max_tokens": prompt.max_tokens,
                    "temperature": prompt.temperature,
                }
                answer = client.post(f"{base}/v1/chat/completions", json=body)
                answer.raise_for_status()
                text = answer.json()["choices"][0]["message"]["content"]
                tokens += answer.json()["usage"]["completion_tokens"]
                if task != "description":
                    continue
                for language in languages:
                    translated = client.post(
                        f"{base}/v1/translations",
                        json={"text": text, "target_languages": [language]},
                    )
                    translated.raise_for_status()
    return {"wall_s": time.perf_counter() - started, "assets": len(paths), "output_tokens": tokens}


def sequential_level(
    base: str, folder: Path, workload: Workload, api_key: str | None
) -> dict[str, Any]:
    """The original loop over the same assets a level uses."""
    paths = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if workload.assets is not None:
        paths = paths[: workload.assets]
    figures = original_loop(base, paths, list(workload.tasks), list(workload.languages),
                            api_key=api_key)  # fmt: skip
    figures["assets_per_min"] = 60 * figures["assets"] / figures["wall_s"]
    figures["output_tokens_per_s"] = figures["output_tokens"] / figures["wall_s"]
    return figures


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as saved: secrets replaced, paths as text."""
    clean: dict[str, Any] = json.loads(json.dumps(config, default=str))
    for key in list(clean):
        if "key" in key.lower() or "token" in key.lower() or "secret" in key.lower():
            clean[key] = "***" if clean[key] else None
    return clean
