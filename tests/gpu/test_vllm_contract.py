"""Every built-in GPU profile against vLLM 0.10.2's own code, CUDA faked (see conftest.py).

vLLM's serve parser takes babelcap's argv without a deprecation; its engine config builds with
the profile's arguments and environment, on the committed stand-in of the same architecture, at
each compute capability, and reports the engine, quantization kernel and prefix caching that
``babelcap.server.capabilities`` states; babelcap's requests go through vLLM's chat parsing and
the model's processor; vLLM's OpenAI app builds with the locked FastAPI and Starlette.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest

from babelcap.server.capabilities import ServingPlan, checkpoint_of, serving_plan
from babelcap.server.profiles import BUILTIN_PROFILES, ServedModel
from tests.gpu.conftest import CAPABILITIES, GPU_VLLM, FakeCuda, VllmWarnings, stand_in_copy

LOCK = Path(__file__).parents[2] / "server" / "stack" / "requirements-gpu.lock"
ARCHITECTURE = {"image": "mllama", "video": "llava-next-video"}

#: (profile, model index) for every model of every built-in GPU profile.
SERVED = [
    pytest.param(profile, index, id=f"{profile}-{served.backend.name}")
    for profile, definition in BUILTIN_PROFILES.items()
    for index, served in enumerate(definition.models)
]


def _on_stand_in(served: ServedModel, root: Path) -> ServedModel:
    """The profile's model, its weights swapped for the stand-in of the same architecture."""
    folder = stand_in_copy(root, ARCHITECTURE[served.role], checkpoint_of(served))
    backend = served.backend.model_copy(update={"model": folder})
    return served.model_copy(update={"backend": backend})


def _parse(served: ServedModel) -> Namespace:
    """vLLM's own serve parser and checks, on the argv babelcap would run."""
    from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils import FlexibleArgumentParser

    argv = served.backend.argv("127.0.0.1", 8000)
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv[3:])
    validate_parsed_serve_args(args)
    return args


def _build(served: ServedModel, ambient: dict[str, str]) -> Any:
    """The engine config, in the environment babelcap gives the process: what the user's
    shell has (``ambient``) overlaid with the backend's own environment."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    os.environ.update({**ambient, **served.backend.env})
    args = _parse(served)
    return AsyncEngineArgs.from_cli_args(args).create_engine_config()


def _reported(config: Any) -> ServingPlan:
    """What vLLM itself decided, in babelcap's terms; its refusals in ``refusal``."""
    import torch
    import vllm.envs
    from vllm.platforms import current_platform

    refusals: list[str] = []
    quantization = None
    quant = config.quant_config
    if quant is not None and quant.get_name() == "compressed-tensors":
        # The kernel is picked per layer when the model is built: ask for a language-model
        # linear layer's scheme exactly as the model's layers do.
        try:
            scheme = quant.get_scheme(torch.nn.Linear(8, 8), "language_model.model.layers.0.mlp")
            quantization = {
                "CompressedTensorsW8A8Fp8": "fp8-w8a8",
                "CompressedTensorsW8A16Fp8": "fp8-w8a16-marlin",
            }[type(scheme).__name__]
        except RuntimeError as error:
            refusals.append(str(error))
    elif quant is not None and quant.get_name() == "bitsandbytes":
        from vllm.model_executor.layers.quantization.bitsandbytes import (
            BitsAndBytesLinearMethod,
        )

        BitsAndBytesLinearMethod(quant)  # what every linear layer does: needs bitsandbytes
        assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4", quant
        quantization = "bitsandbytes-nf4"
    try:
        # What the worker checks first on the device.
        current_platform.check_if_supports_dtype(config.model_config.dtype)
    except ValueError as error:
        refusals.append(str(error))
    return ServingPlan(
        architecture=config.model_config.architecture,
        engine="V1" if vllm.envs.VLLM_USE_V1 else "V0",
        quantization=quantization,
        prefix_caching=bool(config.cache_config.enable_prefix_caching),
        refusal="; ".join(refusals) or None,
    )


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", text, flags=re.MULTILINE))


def test_the_venv_is_the_lock_and_the_lock_keeps_the_known_bad_releases_out():
    pins = _pins(LOCK.read_text(encoding="utf-8"))
    assert pins["vllm"] == GPU_VLLM
    # transformers 5.x breaks both models' configs in vLLM 0.10.2; NF4 needs bitsandbytes>=0.46.1.
    assert int(pins["transformers"].split(".")[0]) < 5
    assert tuple(int(p) for p in pins["bitsandbytes"].split(".")[:3]) >= (0, 46, 1)
    assert "compressed-tensors" in pins
    installed = {
        name: importlib.metadata.version(name)
        for name in ("vllm", "transformers", "bitsandbytes", "compressed-tensors", "torch",
                     "huggingface-hub", "fastapi", "starlette", "pydantic", "openai")
    }  # fmt: skip
    assert installed == {name: pins[name] for name in installed}, "rebuild: make gpu-stack"


@pytest.mark.parametrize(("profile", "index"), SERVED)
def test_vllm_serve_takes_babelcaps_argv_without_deprecations(
    profile: str, index: int, stand_ins: Path, vllm_warnings: VllmWarnings
):
    served = _on_stand_in(BUILTIN_PROFILES[profile].models[index], stand_ins)
    args = _parse(served)
    assert args.model == str(served.backend.model)
    assert args.served_model_name == [served.backend.name]
    assert not vllm_warnings.deprecations()


@pytest.mark.parametrize("capability", CAPABILITIES, ids=lambda c: f"sm{c[0]}{c[1]}")
@pytest.mark.parametrize(("profile", "index"), SERVED)
def test_engine_config_is_what_babelcap_states(
    profile: str,
    index: int,
    capability: tuple[int, int],
    stand_ins: Path,
    vllm_warnings: VllmWarnings,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(FakeCuda, "capability", capability)
    served = BUILTIN_PROFILES[profile].models[index]
    copy = _on_stand_in(served, stand_ins)
    assert checkpoint_of(copy) == checkpoint_of(served)  # the name-based guess agrees
    stated = serving_plan(copy, capability)
    # The worst ambient environment: VLLM_USE_V1=1 exported in the user's shell.
    config = _build(copy, ambient={"VLLM_USE_V1": "1"})
    reported = _reported(config)
    assert reported.architecture == stated.architecture
    assert (reported.engine, reported.quantization, reported.prefix_caching) == (
        stated.engine,
        stated.quantization,
        stated.prefix_caching,
    )
    assert (reported.refusal is None) == (stated.refusal is None), reported.refusal
    assert stated == serving_plan(served, capability)  # the same without the model's folder
    assert not vllm_warnings.deprecations()
    assert not [line for line in vllm_warnings.lines if "Falling back to V0" in line]


@pytest.mark.parametrize(("profile", "index"), SERVED)
def test_vllm_refuses_mllama_on_v1_and_the_profile_pins_v0(
    profile: str, index: int, stand_ins: Path
):
    served = _on_stand_in(BUILTIN_PROFILES[profile].models[index], stand_ins)
    if served.role != "image":
        pytest.skip("LLaVA-NeXT-Video runs on V1")
    assert served.backend.env.get("VLLM_USE_V1") == "0", "Mllama's backend must pin V0"
    bare = served.model_copy(
        update={"backend": served.backend.model_copy(update={"env": {"VLLM_USE_V1": "1"}})}
    )
    with pytest.raises(NotImplementedError, match="VLLM_USE_V1=1 is not supported"):
        _build(bare, ambient={})


def _messages(kind: str, served: ServedModel) -> list[dict[str, Any]]:
    """babelcap's real request for one example file: the client's media part, every built-in
    prompt's messages (the media part first)."""
    from babelcap.client import media
    from babelcap.client.media import MediaOptions, prepare
    from babelcap.prompts import load_prompts

    examples = Path(media.__file__).parent / "examples"
    example = examples / ("red-product.jpg" if kind == "image" else "four-colours.mp4")
    hints = served.media
    options = MediaOptions(
        tile_size=hints.tile_size,
        max_tiles=hints.max_tiles,
        frames=hints.frames,
        frame_size=hints.frame_size,
    )
    part = prepare(kind, example, options).part
    prompt = next(p for p in load_prompts().values() if p.variant(kind) is not None)
    return prompt.messages(kind, part, {})


@pytest.mark.parametrize("kind", ["image", "video"])
def test_babelcaps_requests_go_through_vllm_chat_parsing_and_the_processor(
    kind: str, stand_ins: Path
):
    from vllm.entrypoints.chat_utils import (
        apply_hf_chat_template,
        parse_chat_messages,
        resolve_chat_template_content_format,
    )
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.transformers_utils.tokenizer import cached_tokenizer_from_config

    served = next(m for m in BUILTIN_PROFILES["h100-80gb"].models if m.role == kind)
    copy = _on_stand_in(served, stand_ins)
    config = _build(copy, ambient={})
    model_config = config.model_config
    tokenizer = cached_tokenizer_from_config(model_config)
    content_format = resolve_chat_template_content_format(
        None, None, "auto", tokenizer, model_config=model_config
    )
    conversation, mm_data, _ = parse_chat_messages(
        _messages(kind, served), model_config, tokenizer, content_format
    )
    assert mm_data is not None and len(mm_data[kind]) == 1  # type: ignore[arg-type]
    if kind == "video":
        frames = mm_data["video"][0]
        frames = frames[0] if isinstance(frames, tuple) else frames  # (frames, metadata)
        assert len(frames) == served.media.frames  # one decoded frame per JPEG the client sent
    prompt = apply_hf_chat_template(
        tokenizer, conversation, None, None, model_config=model_config, add_generation_prompt=True
    )
    processor = MULTIMODAL_REGISTRY.create_processor(model_config, tokenizer=tokenizer)
    inputs = processor.apply(prompt, mm_data, hf_processor_mm_kwargs={})
    placeholders = inputs["mm_placeholders"][kind]
    assert len(placeholders) == 1 and placeholders[0].length > 0


def test_vllm_openai_app_builds_with_the_locked_fastapi_and_starlette(stand_ins: Path):
    from fastapi.testclient import TestClient
    from vllm.entrypoints.openai.api_server import build_app

    served = BUILTIN_PROFILES["gpu-24gb-video"].models[0]
    app = build_app(_parse(_on_stand_in(served, stand_ins)))
    # FastAPI 0.16x keeps included routers whole (app.routes lists no paths of vLLM's router;
    # vLLM only logs that list), so ask the app itself: its schema, and a route that needs no
    # engine, through the whole middleware stack and vLLM's lifespan.
    app.state.log_stats = False  # init_app_state sets it, with the engine, in a real server
    with TestClient(app) as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/health", "/v1/models", "/v1/chat/completions"} <= paths.keys()
        assert client.get("/version").json() == {"version": GPU_VLLM}
