"""GPU contract tests: babelcap's GPU profiles against the real vLLM 0.10.2, CUDA faked.

They run in the GPU stack's venv (``make gpu-test``, built by ``make gpu-stack``) and are not
collected anywhere else: the CPU stack's vLLM 0.9.2 is a different program.

Faking CUDA is enough for vLLM's own config code (docs: /work/shared/FACTS.md, "Checking the GPU
path without a GPU"): an empty ``vllm._C`` (the real one needs libcuda), a ``CudaPlatform``
whose device queries answer for a GPU of the capability under test, and CUTLASS's FP8 support
checks answering yes (vLLM asks them before it picks a kernel by capability).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The vLLM release these tests describe: the GPU stack's pin.
GPU_VLLM = "0.10.2"


def _installed_vllm() -> str | None:
    try:
        return importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return None


RUNS_HERE = _installed_vllm() == GPU_VLLM


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip the whole folder unless vLLM 0.10.2 itself is installed (``make gpu-stack``)."""
    return None if RUNS_HERE else True


# --- Fake CUDA, before anything imports vLLM ---------------------------------------------------
if RUNS_HERE:
    sys.modules.setdefault("vllm._C", types.ModuleType("vllm._C"))
    import vllm._custom_ops
    import vllm.platforms
    from vllm.platforms.cuda import CudaPlatform
    from vllm.platforms.interface import DeviceCapability

    class FakeCuda(CudaPlatform):
        """A CUDA GPU of compute capability ``FakeCuda.capability``, 80 GiB, NVLink."""

        capability: tuple[int, int] = (9, 0)

        @classmethod
        def get_device_capability(cls, device_id: int = 0) -> DeviceCapability:
            return DeviceCapability(*cls.capability)

        @classmethod
        def get_device_name(cls, device_id: int = 0) -> str:
            return f"fake sm_{cls.capability[0]}{cls.capability[1]}"

        @classmethod
        def get_device_total_memory(cls, device_id: int = 0) -> int:
            return 80 << 30

        @classmethod
        def is_fully_connected(cls, physical_device_ids: list[int]) -> bool:
            return True

        @classmethod
        def log_warnings(cls) -> None:
            return None

    # One instance for the session: modules bind `current_platform` when they are imported,
    # so the capability changes on the class, never by swapping the instance.
    vllm.platforms._current_platform = FakeCuda()
    for _name in dir(vllm._custom_ops):
        if _name.startswith("cutlass_scaled_mm_supports"):
            setattr(vllm._custom_ops, _name, lambda *args, **kwargs: True)


#: The compute capabilities every GPU profile is checked at: Turing, A100, A10/3090, L4/4090, H100.
CAPABILITIES = [(7, 5), (8, 0), (8, 6), (8, 9), (9, 0)]

#: What the real checkpoints add to the stand-ins' configs so vLLM sees the same quantization.
#: RedHatAI's FP8-dynamic (llm-compressor): per-channel FP8 weights, dynamic per-token FP8
#: activations, vision tower and projector left in bf16.
FP8_DYNAMIC = {
    "quant_method": "compressed-tensors",
    "format": "float-quantized",
    "quantization_status": "compressed",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "dynamic": False,
                        "symmetric": True},
            "input_activations": {"num_bits": 8, "type": "float", "strategy": "token",
                                  "dynamic": True, "symmetric": True},
        }
    },
    "ignore": ["re:.*lm_head", "re:multi_modal_projector.*", "re:vision_model.*"],
}  # fmt: skip
#: unsloth's pre-quantized bnb-4bit checkpoint.
BNB_NF4 = {
    "quant_method": "bitsandbytes",
    "load_in_4bit": True,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_use_double_quant": True,
    "llm_int8_skip_modules": ["lm_head", "multi_modal_projector", "vision_model"],
}
#: The text context the profiles ask for must fit the stand-in, whose own is 4096. Mllama's is
#: Llama 3.2's 131072; LLaVA-NeXT-Video's real context is not checked here (no hub access).
CONTEXT = {"mllama": 131072, "llava-next-video": 8192}


def stand_in_copy(root: Path, architecture: str, checkpoint: str) -> Path:
    """The committed stand-in of ``architecture``, with the real checkpoint's quantization."""
    from babelcap.core.artifacts import stand_in

    folder = root / f"{architecture}-{checkpoint}"
    if folder.is_dir():
        return folder
    shutil.copytree(stand_in(architecture), folder)
    path = folder / "config.json"
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    config["text_config"]["max_position_embeddings"] = CONTEXT[architecture]
    if checkpoint == "fp8":
        config["quantization_config"] = FP8_DYNAMIC
    elif checkpoint == "bitsandbytes":
        config["quantization_config"] = BNB_NF4
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the stand-ins' copies, shared by the session."""
    return tmp_path_factory.mktemp("stand-ins")


@pytest.fixture(autouse=True)
def _own_environment() -> Iterator[None]:
    """vLLM writes VLLM_USE_V1 into os.environ when it picks an engine: undo it per test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


class VllmWarnings(logging.Handler):
    """Collects vLLM's WARNING-and-above log lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def deprecations(self) -> list[str]:
        return [line for line in self.lines if "deprecat" in line.lower()]


@pytest.fixture
def vllm_warnings() -> Iterator[VllmWarnings]:
    """vLLM's warning lines while the test runs, each warning emitted afresh; Python
    DeprecationWarnings raised as errors."""
    import vllm.logger

    vllm.logger._print_warning_once.cache_clear()  # warning_once: not once per session here
    handler = VllmWarnings()
    logger = logging.getLogger("vllm")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            yield handler
    finally:
        logger.removeHandler(handler)
