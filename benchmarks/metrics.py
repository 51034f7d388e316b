"""The figures ``babelcap bench`` reports, each defined once (docs/benchmarks.md repeats them).

Per request (one chat completion, streamed):
- TTFT: request sent -> first content token received.
- E2E latency: request sent -> last byte received.
- TPOT (time per output token): (E2E - TTFT) / (output tokens - 1): the first token is
  *excluded*, as vLLM's ``bench serve`` defines it (GuideLLM includes it); requests with one
  output token have no TPOT.
- ITL (inter-token latency): the gaps between consecutive streamed content chunks (vLLM sends
  one chunk per decoding step, so a chunk is a token, or a few when steps merge).
Per asset: its whole processing time (decode + every task's request + translation), and the parts.
Per run: output tokens/s and requests/s over the measured wall time, assets/min, error rate.
Distributions: mean, p50, p90, p99 (nearest-rank on the sorted values).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from babelcap.client.records import ResultRecord
from babelcap.client.requests import Completion
from babelcap.client.stats import nearest_rank

__all__ = ["Distribution", "LevelMetrics", "RequestSample", "distribution", "prometheus_values"]


@dataclass(frozen=True)
class Distribution:
    """mean, p50, p90, p99, min, max and count of a set of values (seconds, or tokens)."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    min: float | None
    max: float | None


def distribution(values: Iterable[float]) -> Distribution:
    """Summary statistics; all None when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return Distribution(0, None, None, None, None, None, None)
    return Distribution(
        count=len(ordered),
        mean=statistics.fmean(ordered),
        p50=nearest_rank(ordered, 50),
        p90=nearest_rank(ordered, 90),
        p99=nearest_rank(ordered, 99),
        min=ordered[0],
        max=ordered[-1],
    )


@dataclass(frozen=True)
class RequestSample:
    """One request's figures, as saved in the per-request detail."""

    asset: str
    task: str
    model: str
    ttft_s: float
    e2e_s: float
    tpot_s: float | None
    itl_s: tuple[float, ...]
    prompt_tokens: int
    output_tokens: int

    @classmethod
    def from_completion(cls, asset: str, task: str, model: str, done: Completion) -> RequestSample:
        """Figures from a streamed completion."""
        tpot = None
        if done.completion_tokens > 1:
            tpot = (done.latency_s - done.ttft_s) / (done.completion_tokens - 1)
        times = done.chunk_times_s
        gaps = tuple(b - a for a, b in itertools.pairwise(times))
        return cls(asset, task, model, done.ttft_s, done.latency_s, tpot, gaps,
                   done.prompt_tokens, done.completion_tokens)  # fmt: skip


@dataclass
class LevelMetrics:
    """Everything measured at one load level."""

    requests: list[RequestSample] = field(default_factory=list)
    assets: list[ResultRecord] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The figures of this level (see the module docstring for definitions)."""
        requests, assets = self.requests, self.assets
        errors = sum(a.status != "ok" for a in assets)
        output_tokens = sum(r.output_tokens for r in requests)
        wall = self.wall_s or float("nan")

        def parts(name: str) -> Distribution:
            return distribution(a.timings[name] for a in assets if name in a.timings)

        return {
            "assets": len(assets),
            "errors": errors,
            "error_rate": errors / len(assets) if assets else None,
            "requests": len(requests),
            "wall_s": self.wall_s,
            "prompt_tokens": sum(r.prompt_tokens for r in requests),
            "output_tokens": output_tokens,
            "output_tokens_per_s": output_tokens / wall,
            "requests_per_s": len(requests) / wall,
            "assets_per_min": 60 * len(assets) / wall,
            "ttft_s": distribution(r.ttft_s for r in requests).__dict__,
            "tpot_s": distribution(r.tpot_s for r in requests if r.tpot_s is not None).__dict__,
            "itl_s": distribution(gap for r in requests for gap in r.itl_s).__dict__,
            "e2e_s": distribution(r.e2e_s for r in requests).__dict__,
            "output_tokens_per_request": distribution(r.output_tokens for r in requests).__dict__,
            "prompt_tokens_per_request": distribution(r.prompt_tokens for r in requests).__dict__,
            "media_tokens": None,  # vLLM's usage counts them inside prompt_tokens
            "asset_latency_s": distribution(a.seconds for a in assets).__dict__,
            "asset_prepare_s": parts("prepare_s").__dict__,
            "asset_inference_s": parts("inference_s").__dict__,
            "asset_translation_s": parts("translation_s").__dict__,
        }


def prometheus_values(text: str) -> dict[str, float]:
    """``name{labels}`` -> value from Prometheus text, summed over label sets by metric name."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0].strip()
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values
