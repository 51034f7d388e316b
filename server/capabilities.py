"""What vLLM 0.10.2 does with one of babelcap's models on a GPU of a given compute capability.

babelcap's statements, as data: which engine serves each architecture (Mllama is V0-only, so its
backend must run with ``VLLM_USE_V1=0``; LLaVA-NeXT-Video runs on V1), which quantization kernel a
checkpoint gets (compressed-tensors FP8-dynamic: W8A8 at 8.9 and newer, Marlin W8A16 on 8.0-8.6,
refused below 8.0; bitsandbytes NF4 anywhere vLLM runs), whether prefix caching is on, and why a
GPU cannot serve the model at all (bfloat16 needs 8.0). ``babelcap serve --check`` reports them
before starting anything; ``tests/gpu`` checks every built-in profile against vLLM 0.10.2's own
config code, with CUDA faked at compute capabilities 7.5, 8.0, 8.6, 8.9 and 9.0.

Use :func:`serving_plan` with a profile's :class:`~babelcap.server.profiles.ServedModel` and the
GPU's ``(major, minor)`` capability (``nvidia-smi --query-gpu=compute_cap``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from babelcap.server.profiles import ServedModel

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Capability",
    "Checkpoint",
    "Engine",
    "Quantization",
    "ServingPlan",
    "architecture_of",
    "checkpoint_of",
    "serving_plan",
]

Engine = Literal["V0", "V1"]
#: How the checkpoint's weights are stored: plain (bf16/fp16/fp32), compressed-tensors FP8
#: (RedHatAI's FP8-dynamic), or bitsandbytes 4-bit (pre-quantized or quantized on load).
Checkpoint = Literal["plain", "fp8", "bitsandbytes"]
#: The kernel family vLLM picks for the linear layers; ``None`` for plain weights.
Quantization = Literal["fp8-w8a8", "fp8-w8a16-marlin", "bitsandbytes-nf4"]
Capability = tuple[int, int]


@dataclass(frozen=True)
class Architecture:
    """What vLLM 0.10.2 does with one model architecture, whatever the GPU."""

    #: The checkpoint's ``config.json`` ``architectures[0]``.
    hf_name: str
    role: Literal["image", "video"]
    engine: Engine
    #: V0 encoder-decoder models get neither prefix caching nor chunked prefill.
    prefix_caching: bool
    #: The environment a backend of this architecture must carry (so an inherited
    #: ``VLLM_USE_V1=1`` cannot make vLLM refuse the model).
    required_env: dict[str, str] = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {
    a.hf_name: a
    for a in (
        # vllm/model_executor/models/mllama.py: SupportsV0Only; VLLM_USE_V1=1 raises.
        Architecture(
            "MllamaForConditionalGeneration",
            role="image",
            engine="V0",
            prefix_caching=False,
            required_env={"VLLM_USE_V1": "0"},
        ),
        Architecture(
            "LlavaNextVideoForConditionalGeneration",
            role="video",
            engine="V1",
            prefix_caching=True,
        ),
    )
}

#: bfloat16 weights and activations need Ampere (8.0) or newer.
_BF16_MIN: Capability = (8, 0)
#: FP8 W8A8 (CUTLASS scaled_mm) needs Ada (8.9) or newer; Marlin W8A16 runs from Ampere (8.0).
_FP8_W8A8_MIN: Capability = (8, 9)
_FP8_W8A16_MIN: Capability = (8, 0)


@dataclass(frozen=True)
class ServingPlan:
    """What vLLM will do with a model on one GPU; ``refusal`` says why it cannot, if it cannot."""

    architecture: str
    engine: Engine
    quantization: Quantization | None
    prefix_caching: bool
    refusal: str | None = None


def _config(model: Path) -> dict[str, object] | None:
    path = model / "config.json"
    if not path.is_file():
        return None
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


def architecture_of(served: ServedModel) -> Architecture:
    """The model's architecture: from its config.json, else from the profile role it serves."""
    config = _config(served.backend.model)
    names = config.get("architectures") if config else None
    if isinstance(names, list) and names:
        name = str(names[0])
        if name not in ARCHITECTURES:
            known = ", ".join(ARCHITECTURES)
            raise ValueError(f"{served.backend.model}: architecture {name} is not one of {known}")
        return ARCHITECTURES[name]
    return next(a for a in ARCHITECTURES.values() if a.role == served.role)


def checkpoint_of(served: ServedModel) -> Checkpoint:
    """How the weights are stored: config.json's quantization_config when the folder is there,
    else the backend's ``--quantization`` argument or an ``FP8`` in the model's name."""
    args = list(served.backend.extra_args)
    if "--quantization" in args and args[args.index("--quantization") + 1] == "bitsandbytes":
        return "bitsandbytes"
    config = _config(served.backend.model)
    if config is not None:
        quant = config.get("quantization_config")
        method = quant.get("quant_method") if isinstance(quant, dict) else None
        if method == "bitsandbytes":
            return "bitsandbytes"
        if method == "compressed-tensors":
            return "fp8"
        return "plain"
    return "fp8" if "fp8" in served.backend.model.name.lower() else "plain"


def _prefix_caching(arch: Architecture, engine: Engine, args: list[str]) -> bool:
    if engine == "V0" and arch.engine == "V0":
        return False  # encoder-decoder: vLLM turns it off whatever the flags say
    if "--no-enable-prefix-caching" in args:
        return False
    if "--enable-prefix-caching" in args:
        return True
    return engine == "V1"  # V1 turns it on by default, V0 off


def serving_plan(served: ServedModel, capability: Capability) -> ServingPlan:
    """What vLLM 0.10.2 does with ``served`` on a GPU of compute ``capability``."""
    arch = architecture_of(served)
    backend = served.backend
    args = list(backend.extra_args)
    use_v1 = backend.env.get("VLLM_USE_V1")
    engine: Engine = "V0" if use_v1 == "0" else arch.engine
    refusals: list[str] = []
    if arch.engine == "V0" and use_v1 == "1":
        refusals.append(f"{arch.hf_name} runs on vLLM's V0 engine only; VLLM_USE_V1=1 refuses it")

    checkpoint = checkpoint_of(served)
    quantization: Quantization | None = None
    if checkpoint == "bitsandbytes":
        quantization = "bitsandbytes-nf4"
    elif checkpoint == "fp8":
        if capability >= _FP8_W8A8_MIN:
            quantization = "fp8-w8a8"
        elif capability >= _FP8_W8A16_MIN:
            quantization = "fp8-w8a16-marlin"
        else:
            refusals.append(
                f"FP8 checkpoints need compute capability 8.0 or newer (Marlin W8A16; W8A8 from "
                f"8.9); this GPU is {capability[0]}.{capability[1]}: use a bf16 or NF4 profile"
            )
    if backend.dtype == "bfloat16" and capability < _BF16_MIN:
        refusals.append(
            f"bfloat16 needs compute capability 8.0 or newer; this GPU is "
            f"{capability[0]}.{capability[1]}: set the backend's dtype to float16"
        )
    return ServingPlan(
        architecture=arch.hf_name,
        engine=engine,
        quantization=quantization,
        prefix_caching=_prefix_caching(arch, engine, args),
        refusal="; ".join(refusals) or None,
    )
