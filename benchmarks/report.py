"""``babelcap bench`` reports: a fixed-width table, JSON, per-request JSONL, PNG plots, Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["markdown", "plots", "table"]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for profile in result["profiles"]:
        for level in profile["levels"]:
            c = level["client"]
            load = f"c={level['concurrency']}" + (
                f" r={level['rate']:g}/s" if level["rate"] else ""
            )
            rows.append((
                profile["name"], load, str(c["assets"]), f"{c['error_rate'] or 0:.0%}",
                f"{c['assets_per_min']:.1f}", f"{c['output_tokens_per_s']:.1f}",
                f"{c['requests_per_s']:.2f}", _ms(c["ttft_s"]["p50"]), _ms(c["ttft_s"]["p99"]),
                _ms(c["tpot_s"]["p50"]), _ms(c["itl_s"]["p50"]), _ms(c["e2e_s"]["p50"]),
                _ms(c["e2e_s"]["p99"]), _ms(c["asset_latency_s"]["p50"]),
                _ms(c["asset_latency_s"]["p90"]),
            ))  # fmt: skip
        sequential = profile.get("sequential")
        if sequential:
            rows.append((
                profile["name"], "sequential", str(sequential["assets"]), "0%",
                f"{sequential['assets_per_min']:.1f}", f"{sequential['output_tokens_per_s']:.1f}",
                *["-"] * 9,
            ))  # fmt: skip
    return rows


HEADER = (
    "profile", "load", "assets", "err", "assets/min", "out tok/s", "req/s", "TTFT p50",
    "TTFT p99", "TPOT p50", "ITL p50", "E2E p50", "E2E p99", "asset p50", "asset p90",
)  # fmt: skip


def _baseline_rows(baseline: dict[str, Any]) -> list[tuple[str, ...]]:
    """Original pipeline vs babelcap: one row each, then the ratio."""
    original, mine = baseline["original"], baseline["babelcap"]

    def checked(side: dict[str, Any]) -> str:
        check = side["correctness"]
        return "-" if check["correct"] is None else f"{check['correct']}/{check['checked']}"

    rows: list[tuple[str, ...]] = [
        (f"original ({original['quantization']}, {original['attention']}, "
         f"{original['device']}, one at a time)", str(original["assets"]),
         f"{original['assets_per_min']:.1f}", f"{original['output_tokens_per_s']:.1f}",
         _ms(original["asset_latency_s"]["p50"]), _ms(original["asset_latency_s"]["p90"]),
         checked(original)),
        (f"babelcap {mine['profile']} c={mine['concurrency']}", str(mine["assets"]),
         f"{mine['assets_per_min']:.1f}", f"{mine['output_tokens_per_s']:.1f}",
         _ms(mine["asset_latency_s"]["p50"]), _ms(mine["asset_latency_s"]["p90"]),
         checked(mine)),
    ]  # fmt: skip
    ratio = baseline["ratio"]
    latency = ratio["asset_latency_p50"]
    rows.append(("ratio babelcap / original", "", f"{ratio['assets_per_min']:.1f}x",
                 f"{ratio['output_tokens_per_s']:.1f}x",
                 f"{latency:.2f}x (orig/babelcap)" if latency else "-", "", ""))  # fmt: skip
    return rows


BASELINE_HEADER = ("pipeline", "assets", "assets/min", "out tok/s", "asset p50", "asset p90",
                   "correct")  # fmt: skip


def _baseline_table(baseline: dict[str, Any]) -> list[str]:
    rows = [BASELINE_HEADER, *_baseline_rows(baseline)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(BASELINE_HEADER))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return ["", "original pipeline (in-process transformers) vs babelcap, same files:", *lines]


def table(result: dict[str, Any]) -> str:
    """The terminal table (latencies in ms)."""
    rows = [HEADER, *_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [
        f"{p['name']}: best concurrent level {p['speedup_vs_sequential']:.1f}x the sequential "
        "loop's assets/min"
        for p in result["profiles"]
        if p.get("speedup_vs_sequential")
    ]
    if result.get("baseline"):
        notes += _baseline_table(result["baseline"])
    return "\n".join([*lines, "latencies in ms; TPOT excludes the first token", *notes]) + "\n"


def markdown(result: dict[str, Any]) -> str:
    """A summary to paste into an issue or README."""
    hardware = result["hardware"]
    lines = [
        f"### babelcap bench ({result['timestamp']})",
        "",
        f"Hardware: {hardware['cpu']}, {hardware['cpus_available']} CPUs, "
        f"{hardware['memory_gib']} GiB; GPU: {hardware['gpu'] or 'none'}. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}.",
        "",
        f"Workload: {result['workload_summary']}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(result)]
    lines.append("")
    lines.append("Latencies in ms. TTFT: request to first token; TPOT: (E2E - TTFT) / (output "
                 "tokens - 1); ITL: gap between streamed chunks; asset: decode + all tasks + "
                 "translation.")  # fmt: skip
    for profile in result["profiles"]:
        if profile.get("speedup_vs_sequential"):
            ratio = profile["speedup_vs_sequential"]
            lines.append(f"{profile['name']}: {ratio:.1f}x the original sequential loop "
                         "(assets/min, same machine, same run).")  # fmt: skip
    if result.get("baseline"):
        lines += _baseline_markdown(result["baseline"])
    return "\n".join(lines) + "\n"


def _baseline_markdown(baseline: dict[str, Any]) -> list[str]:
    original = baseline["original"]
    ratio = baseline["ratio"]
    lines = [
        "",
        "#### Original pipeline vs babelcap (same files, same machine, one run)",
        "",
        "| " + " | ".join(BASELINE_HEADER) + " |",
        "|" + "---|" * len(BASELINE_HEADER),
        *("| " + " | ".join(row) + " |" for row in _baseline_rows(baseline)),
        "",
        f"Original: transformers generate per asset and task, {original['quantization']}, "
        f"attention {original['attention']} ({original['attention_reason']}), "
        f"{original['frames_per_video']} frames a video decoded the original way, NLLB through "
        f"the transformers pipeline one language at a time; models loaded in "
        f"{original['load_s']:.1f} s (not counted). babelcap: best concurrency level. "
        f"babelcap is {ratio['assets_per_min']:.1f}x the original's assets/min and "
        f"{ratio['output_tokens_per_s']:.1f}x its output tokens/s. Answers checked against "
        "the media's colours: " + ("both sides correct." if baseline["both_correct"] else
                                    "NOT all correct (see bench.json)."),
    ]  # fmt: skip
    return lines


def plots(result: dict[str, Any], folder: Path) -> list[Path]:
    """Throughput vs concurrency, and the request latency CDF per profile and level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for profile in result["profiles"]:
        levels = [lv for lv in profile["levels"] if not lv["rate"]]
        x = [lv["concurrency"] for lv in levels]
        left.plot(x, [lv["client"]["output_tokens_per_s"] for lv in levels], marker="o",
                  label=profile["name"])  # fmt: skip
        right.plot(x, [lv["client"]["assets_per_min"] for lv in levels], marker="o",
                   label=profile["name"])  # fmt: skip
        if profile.get("sequential"):
            right.axhline(profile["sequential"]["assets_per_min"], linestyle="--", linewidth=1,
                          label=f"{profile['name']} sequential loop")  # fmt: skip
    for axis, label in ((left, "output tokens/s"), (right, "assets/min")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrency (requests in flight)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("babelcap bench: throughput vs concurrency")
    written.append(_save(figure, folder / "throughput.png"))

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for profile in result["profiles"]:
        for level in profile["levels"]:
            values = sorted(level.get("e2e_values_s") or [])
            if values:
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                rate = f" r={level['rate']:g}/s" if level["rate"] else ""
                axis.step([v * 1000 for v in values], fractions, where="post",
                          label=f"{profile['name']} c={level['concurrency']}{rate}")  # fmt: skip
    axis.set_xlabel("request end-to-end latency (ms)")
    axis.set_ylabel("fraction of requests")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title("babelcap bench: request latency CDF")
    written.append(_save(figure, folder / "latency_cdf.png"))
    if result.get("baseline"):
        written.append(_baseline_plot(result["baseline"], folder / "baseline.png"))
    return written


def _baseline_plot(baseline: dict[str, Any], path: Path) -> Path:
    """Bars: assets/min, output tokens/s and per-asset p50 latency, original vs babelcap."""
    import matplotlib.pyplot as plt

    sides = (("original", baseline["original"]), ("babelcap", baseline["babelcap"]))
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    figures = {
        "assets/min": [side["assets_per_min"] for _, side in sides],
        "output tokens/s": [side["output_tokens_per_s"] for _, side in sides],
        "asset latency p50 (s)": [side["asset_latency_s"]["p50"] or 0.0 for _, side in sides],
    }
    for axis, (label, values) in zip(axes, figures.items(), strict=True):
        axis.bar([name for name, _ in sides], values, color=["#999999", "#1f77b4"])
        axis.set_title(label)
        axis.grid(axis="y", alpha=0.3)
    ratio = baseline["ratio"]["assets_per_min"]
    figure.suptitle(f"original pipeline vs babelcap: {ratio:.1f}x assets/min")
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
