"""`babelcap serve --check` and the preflight behind plain `serve`: every check prints a verdict,
and a profile that cannot run here is refused before anything starts.

GPUs are stood in for by an ``nvidia-smi`` script on PATH that prints what a real one prints
for ``--query-gpu=name,compute_cap,memory.total,memory.free --format=csv,noheader,nounits``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import shutil
import stat
from pathlib import Path

import pytest

from babelcap.cli import main
from babelcap.core.errors import EXIT_SETTINGS, BackendStartError, ConfigurationError
from babelcap.server.preflight import preload_cublas, run_checks
from babelcap.server.profiles import BUILTIN_PROFILES, load_profile
from babelcap.server.serve import _warm_translator, serve
from babelcap.server.settings import ServeSettings

_H100 = "NVIDIA H100 80GB HBM3, 9.0, 81559, 81000"
_A100_40 = "NVIDIA A100-SXM4-40GB, 8.0, 40960, 40000"
_L4 = "NVIDIA L4, 8.9, 23034, 22800"
_T4 = "Tesla T4, 7.5, 15360, 15000"


@pytest.fixture
def gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Call with a listing line to put an nvidia-smi that prints it first on PATH; with None to
    leave no nvidia-smi on PATH at all."""

    def install(listing: str | None) -> None:
        folder = tmp_path / f"bin-{len(list(tmp_path.glob('bin-*')))}"
        folder.mkdir()
        if listing is not None:
            script = folder / "nvidia-smi"
            script.write_text(f"#!/bin/sh\necho '{listing}'\n", encoding="utf-8")
            script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", str(folder))

    return install


def _verdicts(name: str) -> dict[str, tuple[str, str]]:
    return {c.name: (c.verdict, c.detail) for c in run_checks(BUILTIN_PROFILES[name])}


def test_check_on_a_machine_without_a_gpu_prints_every_verdict_and_names_the_gpu(gpu, capsys):
    gpu(None)
    assert main(["serve", "--profile", "h100-80gb", "--check"]) == EXIT_SETTINGS
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "babelcap serve --check: profile h100-80gb"
    checks = lines[1:-1]
    assert all(line.split()[0] in ("ok", "warn", "FAIL", "skip") for line in checks)
    names = [line.split(maxsplit=1)[1].split(":")[0] for line in checks]
    for expected in (
        "vLLM installed",
        "GPU present",
        "compute capability",
        "GPU memory",
        "CUDA runtime for CTranslate2",
        "disk for models",
        "model llama-3.2-11b-vision-fp8",
        "model llava-next-video-7b",
        "model nllb (translator)",
    ):
        assert expected in names
    assert "FAIL  GPU present: no NVIDIA GPU visible" in out
    assert "GPU present" in lines[-1] and "failed" in lines[-1]


def test_plain_serve_refuses_the_same_way_before_starting_anything(gpu, tmp_path):
    gpu(None)
    with pytest.raises(ConfigurationError, match="GPU present: no NVIDIA GPU visible"):
        serve(ServeSettings(profile="h100-80gb", log_dir=tmp_path / "logs"))
    assert not (tmp_path / "logs").exists()


def test_the_tiny_profile_passes_here(capsys):
    assert main(["serve", "--profile", "tiny-cpu", "--check"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.splitlines()[-1] == "profile tiny-cpu can start here"


def test_fp8_is_native_on_hopper_and_the_profile_fits_an_80gb_card(gpu):
    gpu(_H100)
    checks = _verdicts("h100-80gb")
    assert checks["GPU present"][0] == "ok" and "H100" in checks["GPU present"][1]
    fp8 = checks["compute capability for llama-3.2-11b-vision-fp8"]
    assert fp8[0] == "ok" and "W8A8" in fp8[1]
    assert checks["free GPU memory"][0] == "ok"
    assert checks["memory for llama-3.2-11b-vision-fp8"][0] == "ok"
    assert checks["memory for llava-next-video-7b"][0] == "ok"


def test_fp8_on_ampere_warns_of_marlin(gpu):
    gpu(_A100_40)
    verdict, detail = _verdicts("gpu-24gb-image")["compute capability for llama-3.2-11b-vision-fp8"]
    assert verdict == "warn" and "Marlin" in detail and "W8A16" in detail


def test_below_ampere_fp8_is_refused_naming_what_would_work(gpu):
    gpu(_T4)
    verdict, detail = _verdicts("gpu-24gb-image")["compute capability for llama-3.2-11b-vision-fp8"]
    assert verdict == "FAIL" and "7.5" in detail and "llama-vision-nf4" in detail


def test_bf16_llama_does_not_fit_a_24gb_card(gpu):
    gpu(_L4)
    checks = _verdicts("llama-vision-bf16")
    assert checks["GPU memory"][0] == "FAIL" and "40 GB" in checks["GPU memory"][1]
    assert checks["memory for llama-3.2-11b-vision-bf16"][0] == "FAIL"
    assert _verdicts("gpu-24gb-image")["memory for llama-3.2-11b-vision-fp8"][0] == "ok"


def test_memory_another_process_holds_is_counted(gpu):
    gpu("NVIDIA H100 80GB HBM3, 9.0, 81559, 40000")
    verdict, detail = _verdicts("h100-80gb")["free GPU memory"]
    assert verdict == "FAIL" and "85%" in detail


def test_nf4_needs_bitsandbytes_0_46_1():
    verdict, detail = _verdicts("llama-vision-nf4")["bitsandbytes for NF4"]
    try:
        installed = importlib.metadata.version("bitsandbytes")
    except importlib.metadata.PackageNotFoundError:  # the CPU stack has none
        assert verdict == "FAIL" and "bitsandbytes>=0.46.1" in detail
    else:
        assert verdict == ("ok" if installed >= "0.46.1" else "FAIL")
    assert "bitsandbytes for NF4" not in _verdicts("llama-vision-fp8")


def test_cublas_for_ctranslate2_is_found_or_preloaded_from_the_pip_wheel():
    where = preload_cublas()
    assert "loader path" in where or "nvidia/cublas/lib" in where
    import ctypes

    ctypes.CDLL("libcublas.so.12")  # loadable by name now, as CTranslate2 will load it


def test_a_missing_local_model_folder_fails_its_check(tmp_path):
    data = load_profile("tiny-cpu").model_dump(mode="json")
    data["models"][0]["backend"]["model"] = str(tmp_path / "nowhere")
    config = tmp_path / "p.json"
    config.write_text(json.dumps(data), encoding="utf-8")
    checks = {c.name: c for c in run_checks(load_profile(config=config))}
    assert checks["model tiny-mllama"].verdict == "FAIL"
    assert "nowhere" in checks["model tiny-mllama"].detail


def test_the_translator_warms_up_and_stays_usable():
    translation = load_profile("tiny-cpu").translation
    engine = _warm_translator(translation)
    # The warm-up's event loop is gone: the engine must work on the gateway's own loop.
    result = asyncio.run(engine.translate(["A red car."], ["fra_Latn"]))
    assert result.texts["fra_Latn"][0]


def test_a_translator_that_cannot_translate_fails_serve_with_a_clear_error(tmp_path):
    broken = tmp_path / "nllb-ct2"
    shutil.copytree(load_profile("tiny-cpu").translation.model, broken)
    (broken / "model.bin").write_bytes(b"not a model")
    translation = load_profile("tiny-cpu").translation.model_copy(update={"model": broken})
    with pytest.raises(BackendStartError, match="failed its warm-up translation"):
        _warm_translator(translation)
