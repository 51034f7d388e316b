"""The supervisor's start order and per-backend environment, with real child processes: a small
HTTP server script stands in for ``vllm serve`` (it takes the same argv through
``VllmBackend``'s python), journals when it starts and when it answers ``/health``, and
records the ``VLLM_USE_V1`` it was given."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from babelcap.core.errors import BackendStartError
from babelcap.server.profiles import BUILTIN_PROFILES, Hardware, Profile, ServedModel
from babelcap.server.supervisor import Supervisor
from babelcap.server.vllm_process import VllmBackend

# Started as `<script> -m vllm.entrypoints.openai.api_server --model ... --port N ...`.
_STAND_IN = """\
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

argv = sys.argv
name = argv[argv.index("--served-model-name") + 1]
port = int(argv[argv.index("--port") + 1])
journal = os.environ["JOURNAL"]

def note(event):
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": event, "name": name, "t": time.monotonic(),
                                 "VLLM_USE_V1": os.environ.get("VLLM_USE_V1")}) + "\\n")

note("start")
if os.environ.get("FAIL_START") == name:
    sys.exit(3)
time.sleep(float(os.environ.get("LOAD_S", "0.8")))  # "loading weights"

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", port), Health)
note("ready")
server.serve_forever()
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    script = tmp_path / "fake-vllm"
    script.write_text(f"#!{sys.executable}\n{_STAND_IN}", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _backend(tmp_path: Path, name: str, gpu_share: float | None, **env: str) -> VllmBackend:
    folder = tmp_path / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    share = ("--gpu-memory-utilization", str(gpu_share)) if gpu_share else ()
    return VllmBackend.model_validate(
        {"name": name, "model": str(folder), "extra_args": share, "env": env}
    )


def _profile(backends: list[VllmBackend], *, gpu: bool) -> Profile:
    return Profile(
        name="test",
        models=[ServedModel(role="image", backend=b) for b in backends],
        hardware=Hardware(gpu=gpu),
        startup_timeout_s=30,
    )


def _journal(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _run(profile: Profile, tmp_path: Path, stand_in: Path) -> list[dict[str, object]]:
    supervisor = Supervisor(profile, tmp_path / "logs", echo=False, python=str(stand_in))
    try:
        supervisor.start()
        assert [b.state for b in supervisor.backends] == ["ready"] * len(profile.models)
    finally:
        supervisor.stop()
    return _journal(tmp_path / "journal")


def test_gpu_backends_start_one_after_another_each_healthy_first(tmp_path, stand_in):
    env = {"JOURNAL": str(tmp_path / "journal")}
    profile = _profile(
        [_backend(tmp_path, "a", 0.45, **env), _backend(tmp_path, "b", 0.40, **env)], gpu=True
    )
    events = [(e["event"], e["name"]) for e in _run(profile, tmp_path, stand_in)]
    assert events == [("start", "a"), ("ready", "a"), ("start", "b"), ("ready", "b")]


def test_a_gpu_share_alone_makes_the_start_sequential(tmp_path, stand_in):
    env = {"JOURNAL": str(tmp_path / "journal")}
    profile = _profile(
        [_backend(tmp_path, "a", 0.3, **env), _backend(tmp_path, "b", None, **env)], gpu=False
    )
    events = [(e["event"], e["name"]) for e in _run(profile, tmp_path, stand_in)]
    assert events == [("start", "a"), ("ready", "a"), ("start", "b"), ("ready", "b")]


def test_a_cpu_profile_without_gpu_shares_starts_its_backends_together(tmp_path, stand_in):
    env = {"JOURNAL": str(tmp_path / "journal"), "LOAD_S": "1.5"}
    profile = _profile(
        [_backend(tmp_path, "a", None, **env), _backend(tmp_path, "b", None, **env)], gpu=False
    )
    events = [e["event"] for e in _run(profile, tmp_path, stand_in)]
    assert events[:2] == ["start", "start"]  # the second started before the first was ready


def test_a_backend_that_fails_to_start_stops_the_next_from_starting(tmp_path, stand_in):
    env = {"JOURNAL": str(tmp_path / "journal"), "FAIL_START": "a"}
    profile = _profile(
        [_backend(tmp_path, "a", 0.4, **env), _backend(tmp_path, "b", 0.4, **env)], gpu=True
    )
    supervisor = Supervisor(profile, tmp_path / "logs", echo=False, python=str(stand_in))
    with pytest.raises(BackendStartError, match="a \\(vllm\\) exited with code 3"):
        supervisor.start()
    assert [(e["event"], e["name"]) for e in _journal(tmp_path / "journal")] == [("start", "a")]


def test_mllama_runs_on_v0_even_when_the_user_exports_vllm_use_v1(tmp_path, stand_in, monkeypatch):
    monkeypatch.setenv("VLLM_USE_V1", "1")
    journal = {"JOURNAL": str(tmp_path / "journal")}
    h100 = BUILTIN_PROFILES["h100-80gb"]
    models = []
    for served in h100.models:
        folder = tmp_path / "models" / served.backend.name
        folder.mkdir(parents=True)
        backend = served.backend.model_copy(
            update={"model": folder, "env": {**served.backend.env, **journal}}
        )
        models.append(served.model_copy(update={"backend": backend}))
    profile = h100.model_copy(update={"models": models, "startup_timeout_s": 30})
    seen = {e["name"]: e["VLLM_USE_V1"] for e in _run(profile, tmp_path, stand_in)}
    # Mllama is SupportsV0Only in vLLM 0.10.2 (VLLM_USE_V1=1 makes it refuse the model);
    # LLaVA-NeXT-Video keeps what the user chose (V1 by default).
    assert seen == {"llama-3.2-11b-vision-fp8": "0", "llava-next-video-7b": "1"}
