"""Profiles are validated data with errors that name the field and the fix."""

from __future__ import annotations

import json

import pytest

from babelcap.core.errors import ConfigurationError
from babelcap.server.profiles import BUILTIN_PROFILES, load_profile
from babelcap.server.supervisor import preflight


def test_tiny_cpu_is_the_default_and_serves_the_committed_models(artifacts):
    profile = load_profile()
    assert profile.name == "tiny-cpu"
    assert {m.role: m.backend.model for m in profile.models} == {
        "image": artifacts / "mllama",
        "video": artifacts / "llava-next-video",
    }
    assert profile.translation.model == artifacts / "nllb-ct2"


def test_gpu_profiles_carry_mllamas_vllm_arguments():
    fp8 = BUILTIN_PROFILES["h100-80gb"].models[0].backend
    assert "FP8-dynamic" in str(fp8.model)
    assert fp8.enforce_eager and fp8.max_num_seqs == 16
    assert fp8.limit_mm_per_prompt == '{"image": 1}'
    nf4 = BUILTIN_PROFILES["llama-vision-nf4"].models[0].backend
    assert "bitsandbytes" in nf4.argv("127.0.0.1", 1)


def test_a_wrong_profile_file_names_the_field(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "x", "models": [{"role": "audio", "backend": {}}]}))
    with pytest.raises(ConfigurationError) as caught:
        load_profile(config=path)
    message = str(caught.value)
    assert "models.0.role" in message and "models.0.backend.name" in message


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(
        ConfigurationError, match="choose one of tiny-cpu, tiny-cpu-bf16, h100-80gb"
    ):
        load_profile("h200")


def test_preflight_says_what_is_missing_before_starting_anything():
    with pytest.raises(ConfigurationError, match="does not exist; download it"):
        preflight(BUILTIN_PROFILES["gpu-24gb-image"])


def test_gpu_memory_shares_must_fit_one_gpu():
    data = BUILTIN_PROFILES["h100-80gb"].model_dump(mode="json")
    data["models"][1]["backend"]["extra_args"] = ["--gpu-memory-utilization", "0.6"]
    with pytest.raises(ValueError, match=r"add up to 1\.05"):
        type(BUILTIN_PROFILES["h100-80gb"]).model_validate(data)


def test_tiny_profiles_list_media_hints_and_the_bf16_variant():
    tiny = load_profile("tiny-cpu")
    image, video = tiny.models
    assert (image.media.tile_size, image.media.max_tiles) == (56, 4)
    assert (video.media.frames, video.media.frame_size) == (4, 64)
    bf16 = load_profile("tiny-cpu-bf16")
    assert bf16.name == "tiny-cpu-bf16"
    assert {m.backend.dtype for m in bf16.models} == {"bfloat16"}
    assert BUILTIN_PROFILES["h100-80gb"].models[1].media.frames == 8


def test_vllm_does_not_log_prompts_unless_asked():
    backend = load_profile("tiny-cpu").models[0].backend
    argv = backend.argv("127.0.0.1", 1)
    assert "--disable-log-requests" in argv and "--disable-uvicorn-access-log" in argv
    verbose = backend.model_copy(update={"log_requests": True}).argv("127.0.0.1", 1)
    assert "--disable-log-requests" not in verbose
    assert backend.env["OMP_NUM_THREADS"] == "1"
