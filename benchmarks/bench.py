"""``babelcap bench``: throughput and latency of the whole pipeline, per load level and profile.

``run`` measures one server (``--server URL``, or ``--profile`` started here); ``compare``
starts each of ``--profiles`` in turn through ``babelcap serve`` (the supervisor), runs the
identical workload on each, and reports them side by side. See benchmarks/metrics.py (and
docs/benchmarks.md) for what every figure means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from babelcap.benchmarks.environment import environment
from babelcap.benchmarks.load import redact, run_level, sequential_level
from babelcap.benchmarks.original_pipeline import Quantization
from babelcap.benchmarks.report import markdown, plots, table
from babelcap.benchmarks.workload import Workload, synthetic_media
from babelcap.client.store import write_json
from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError
from babelcap.core.settings import split_list

__all__ = ["BenchSettings", "run_bench"]

BENCH_SCHEMA_VERSION = 1


class BenchSettings(BaseSettings, Workload):
    """Everything a benchmark run can be told (also as ``BABELCAP_BENCH_<NAME>``): the workload
    (benchmarks/settings.py), where to send it, and the load levels."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_BENCH_", extra="forbid")

    server: str | None = Field(None, description="a running babelcap server to measure")
    profile: str = Field("tiny-cpu", description="profile to start when no --server is given")
    profiles: Annotated[list[str], NoDecode] = Field(
        [], description="compare: the profiles to start in turn, e.g. tiny-cpu,tiny-cpu-bf16"
    )
    api_key: SecretStr | None = Field(None, description="server API key (never saved)")
    concurrency: Annotated[list[int], NoDecode] = Field(
        [1, 4, 16], description="concurrency sweep: requests in flight"
    )
    rate: float | None = Field(
        None, gt=0, description="also feed assets as a Poisson process of this rate (assets/s)"
    )
    skip_sequential: bool = Field(
        False, description="do not run the original sequential loop (no speed-up ratio)"
    )
    output_dir: Path = Field(Path("out/bench"), description="where reports go")
    per_request: bool = Field(False, description="also save every request (requests.jsonl)")
    startup_timeout_s: float = Field(
        defaults.STARTUP_TIMEOUT_S, gt=0, description="per started server"
    )
    baseline_quantization: Quantization | None = Field(
        None,
        description="baseline: the original pipeline's image model as fp32, bf16, nf4 "
        "(bitsandbytes) or fp8 (a compressed-tensors checkpoint); default: from --profile",
    )
    baseline_device: str | None = Field(
        None, description="baseline: torch device of the original pipeline (cpu, cuda)"
    )
    baseline_image_model: str | None = Field(
        None, description="baseline: Mllama checkpoint (default: --profile's image model)"
    )
    baseline_video_model: str | None = Field(
        None, description="baseline: LLaVA-NeXT-Video checkpoint (default: --profile's)"
    )
    baseline_translation_model: str | None = Field(
        None, description="baseline: Hugging Face NLLB checkpoint (default: --profile's)"
    )

    @field_validator("profiles", "concurrency", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return split_list(value)


@contextlib.contextmanager
def _target(settings: BenchSettings, profile: str | None, logs: Path) -> Iterator[str]:
    if profile is None and settings.server:
        yield settings.server.rstrip("/").removesuffix("/v1")
        return
    from babelcap.server.launch import local_server

    key = settings.api_key.get_secret_value() if settings.api_key else None
    with local_server(logs, profile=profile or settings.profile,
                      timeout=settings.startup_timeout_s, api_key=key) as served:  # fmt: skip
        yield served.base


def _token_check(metrics: Any, server: dict[str, Any]) -> dict[str, Any]:
    """The usage the client received vs the vLLM backends' own counters, per model.

    Output tokens must match exactly. Prompt tokens match where the counter counts media
    tokens too (V1 engines); vLLM's V0 encoder-decoder runner (Mllama) counts only the decoder
    prompt, so there the difference is the image's encoder tokens, reported as media tokens.
    """
    models: dict[str, Any] = {}
    for name, counters in server["models"].items():
        mine = [r for r in metrics.requests if r.model == name]
        prompt = sum(r.prompt_tokens for r in mine)
        output = sum(r.output_tokens for r in mine)
        models[name] = {
            "client_prompt_tokens": prompt,
            "server_prompt_tokens": counters["prompt_tokens"],
            "client_output_tokens": output,
            "server_generation_tokens": counters["generation_tokens"],
            "output_equal": output == counters["generation_tokens"],
            "prompt_equal": prompt == counters["prompt_tokens"],
            "media_tokens_not_in_server_prompt_counter": prompt - counters["prompt_tokens"],
        }
    return {
        "models": models,
        "output_equal": all(m["output_equal"] for m in models.values()) and bool(models),
    }


def _answers(metrics: Any, folder: Path) -> dict[str, tuple[str | None, str]]:
    """Path under ``folder`` -> (kind, description) of every asset a level captioned."""
    from babelcap.benchmarks.baseline_compare import media_key

    return {media_key(r.path, folder): (r.kind, r.tasks["description"].text
                                         if "description" in r.tasks else "")
            for r in metrics.assets}  # fmt: skip


def _measure(
    settings: BenchSettings, base: str, name: str, folder: Path, answers: bool = False
) -> dict[str, Any]:
    from babelcap.client.config import CaptionSettings
    from babelcap.client.runner import caption

    key = settings.api_key.get_secret_value() if settings.api_key else None
    scratch = settings.output_dir / "scratch" / name
    scratch.mkdir(parents=True, exist_ok=True)
    if settings.warmup:
        from babelcap.client.runner import Hooks

        warm = CaptionSettings(server=[base], api_key=key, tasks=list(settings.tasks),
                               languages=list(settings.languages), output=scratch / "warmup.jsonl",
                               overwrite=True, quiet=True)  # fmt: skip
        asyncio.run(caption(warm, [str(folder)], Hooks(max_assets=settings.warmup)))
    profile: dict[str, Any] = {"name": name, "server": base, "levels": [], "requests": []}
    if not settings.skip_sequential:
        sys.stderr.write(f"bench {name}: sequential loop\n")
        profile["sequential"] = sequential_level(base, folder, settings, key)
    loads: list[tuple[int, float | None]] = [(c, None) for c in settings.concurrency]
    if settings.rate:
        loads.append((max(settings.concurrency), settings.rate))
    for concurrency, rate in loads:
        sys.stderr.write(f"bench {name}: concurrency {concurrency}"
                         + (f", {rate:g} assets/s" if rate else "") + "\n")  # fmt: skip
        metrics, server = asyncio.run(
            run_level(
                base,
                folder,
                settings,
                concurrency=concurrency,
                rate=rate,
                api_key=key,
                scratch=scratch,
            )
        )
        client = metrics.summary()
        level = {
            "concurrency": concurrency,
            "rate": rate,
            "client": client,
            "server": server,
            "token_check": _token_check(metrics, server),
            "e2e_values_s": sorted(r.e2e_s for r in metrics.requests),
        }
        if answers:
            level["answers"] = _answers(metrics, folder)
        profile["levels"].append(level)
        if settings.per_request:
            profile["requests"] += [{"profile": name, "concurrency": concurrency, "rate": rate,
                                     **r.__dict__} for r in metrics.requests]  # fmt: skip
    best = max(lv["client"]["assets_per_min"] for lv in profile["levels"])
    if profile.get("sequential"):
        profile["speedup_vs_sequential"] = best / profile["sequential"]["assets_per_min"]
    return profile


def _baseline(settings: BenchSettings, profile: dict[str, Any], folder: Path) -> dict[str, Any]:
    from babelcap.benchmarks.baseline_compare import (
        baseline_config,
        baseline_media,
        compare,
        profile_frames,
        run_original,
    )
    from babelcap.benchmarks.workload import synthetic_colours

    paths = baseline_media(folder, list(profile["levels"][0]["answers"]))  # babelcap's files
    config = baseline_config(settings, profile_frames(settings.profile))
    sys.stderr.write(f"bench baseline: original pipeline ({config.quantization}, "
                     f"{config.device}) over {len(paths)} assets\n")  # fmt: skip
    original = run_original(config, paths, settings.warmup)
    expected = synthetic_colours(settings) if settings.media is None else None
    return compare(original, profile, expected, folder)


def run_bench(
    settings: BenchSettings, compare: bool = False, baseline: bool = False
) -> dict[str, Any]:
    """Run the benchmark (or the comparison, or the original-pipeline baseline), write every
    report, return the result."""
    if baseline and (compare or settings.server):
        raise ConfigurationError("bench baseline starts --profile itself: drop --server")
    if compare and len(settings.profiles) < 2:
        raise ConfigurationError("bench compare needs --profiles A,B (two or more)")
    if compare and settings.server:
        raise ConfigurationError("bench compare starts its own servers: drop --server")
    out = settings.output_dir
    if settings.media is not None:
        if not settings.media.is_dir():
            raise ConfigurationError(f"--media {settings.media} is not a folder")
        folder = settings.media
    else:
        folder = synthetic_media(settings, out / "media")
    targets: list[str | None] = list(settings.profiles) if compare else [None]
    profiles = []
    for profile in targets:
        name = profile or (settings.server or settings.profile)
        with _target(settings, profile, out / "logs" / (profile or "run")) as base:
            profiles.append(_measure(settings, base, name, folder, answers=baseline))
    requests = [r for p in profiles for r in p.pop("requests")]
    action = " compare" if compare else " baseline" if baseline else ""
    result = {
        **environment(),
        "schema_version": BENCH_SCHEMA_VERSION,
        "benchmark": "babelcap bench" + action,
        "config": redact(settings.model_dump()),
        "workload_summary": settings.describe(),
        "profiles": profiles,
    }
    if baseline:  # after the server stopped: the original pipeline has the machine alone
        result["baseline"] = _baseline(settings, profiles[0], folder)
    write_json(out / "bench.json", result)
    (out / "bench.md").write_text(markdown(result), encoding="utf-8")
    written = plots(result, out)
    if settings.per_request:
        with (out / "requests.jsonl").open("w", encoding="utf-8") as handle:
            for request in requests:
                handle.write(json.dumps(request) + "\n")
    sys.stdout.write(table(result))
    sys.stdout.write(f"reports: {out / 'bench.json'}, {out / 'bench.md'}, "
                     f"{', '.join(str(p) for p in written)}\n")  # fmt: skip
    return result
