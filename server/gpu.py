"""The one place that asks ``nvidia-smi`` about the GPUs (serve's preflight, benchmark records)."""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["nvidia_smi"]


def nvidia_smi(fields: str, *, units: bool = True) -> str | None:
    """``nvidia-smi --query-gpu=FIELDS`` as header-less CSV, one line per GPU; None where there
    is no nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    csv = "csv,noheader" if units else "csv,noheader,nounits"
    query = subprocess.run(
        ["nvidia-smi", f"--query-gpu={fields}", f"--format={csv}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return query.stdout
