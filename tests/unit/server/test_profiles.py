"""Profiles are validated data with errors that name the field and the fix."""

from __future__ import annotations

import json

import pytest

from babelcap.core.errors import ConfigurationError
from babelcap.server.profiles import BUILTIN_PROFILES, load_profile


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
    assert str(fp8.model) == "RedHatAI/Llama-3.2-11B-Vision-Instruct-FP8-dynamic"
    assert fp8.enforce_eager and fp8.max_num_seqs == 16
    assert fp8.limit_mm_per_prompt == '{"image": 1}'
    nf4 = BUILTIN_PROFILES["llama-vision-nf4"].models[0].backend
    # NF4 is quantized while the bf16 checkpoint loads (the load format is implied).
    assert str(nf4.model) == "meta-llama/Llama-3.2-11B-Vision-Instruct"
    argv = nf4.argv("127.0.0.1", 1)
    assert argv[argv.index("--quantization") + 1] == "bitsandbytes"


def test_gpu_profiles_name_hub_models_not_folders():
    refs = {str(m.backend.model) for p in BUILTIN_PROFILES.values() for m in p.models} | {
        str(p.translation.model) for p in BUILTIN_PROFILES.values() if p.translation
    }
    assert refs == {
        "RedHatAI/Llama-3.2-11B-Vision-Instruct-FP8-dynamic",
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
        "llava-hf/LLaVA-NeXT-Video-7B-hf",
        "facebook/nllb-200-distilled-600M",
    }
    nllb = BUILTIN_PROFILES["h100-80gb"].translation
    assert (nllb.device, nllb.compute_type) == ("cuda", "int8_float16")


def test_mllama_backends_run_on_v0_and_say_what_it_costs():
    for profile in BUILTIN_PROFILES.values():
        for served in profile.models:
            if served.role == "image":
                assert served.backend.env["VLLM_USE_V1"] == "0"
                assert "V0" in profile.description and "prefix caching" in profile.description
            else:
                assert "VLLM_USE_V1" not in served.backend.env


def test_profiles_state_the_hardware_they_need():
    need = {n: p.hardware for n, p in BUILTIN_PROFILES.items()}
    assert need["llama-vision-bf16"].min_gpu_memory_gb >= 40  # 21 GB of weights: not 24 GB
    assert need["gpu-24gb-image"].min_gpu_memory_gb == 24  # FP8 fits a 24 GB card
    assert need["gpu-24gb-video"].min_gpu_memory_gb == 24
    assert all(
        h.gpu and h.vllm == "0.10.2" and h.min_compute_capability == 8.0 for h in need.values()
    )
    video = BUILTIN_PROFILES["gpu-24gb-video"].models[0]
    # 14 GB of weights in 85% of 24 GB leaves about 6 GB: KV for 4096 tokens (2 GB) fits.
    assert video.backend.max_model_len == 4096
    assert video.weights_gb + 4 < 0.85 * 24
    assert not load_profile("tiny-cpu").hardware.gpu


def test_only_cpu_profiles_without_gpu_shares_start_backends_together():
    assert not load_profile("tiny-cpu").starts_one_by_one()
    assert all(p.starts_one_by_one() for p in BUILTIN_PROFILES.values())


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
    verbose = backend.model_copy(update={"log_requests": True})
    # The CPU build (0.9.2) logs requests unless told not to.
    argv = backend.argv("127.0.0.1", 1, vllm_version=(0, 9, 2))
    assert "--disable-log-requests" in argv and "--disable-uvicorn-access-log" in argv
    assert "--disable-log-requests" not in verbose.argv("127.0.0.1", 1, vllm_version=(0, 9, 2))
    # 0.10.2 logs none unless asked, and deprecates --disable-log-requests.
    argv = backend.argv("127.0.0.1", 1, vllm_version=(0, 10, 2))
    assert "--disable-uvicorn-access-log" in argv
    assert not {"--disable-log-requests", "--enable-log-requests"} & set(argv)
    assert "--enable-log-requests" in verbose.argv("127.0.0.1", 1, vllm_version=(0, 10, 2))
    assert backend.env["OMP_NUM_THREADS"] == "1"


def test_argv_follows_the_installed_vllm():
    from babelcap.server.vllm_process import installed_vllm_version

    argv = load_profile("tiny-cpu").models[0].backend.argv("127.0.0.1", 1)
    assert ("--disable-log-requests" in argv) == (installed_vllm_version() < (0, 10, 2))
