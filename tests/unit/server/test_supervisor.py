"""The supervisor's start order, per-backend environment and watching, with real child
processes: a small HTTP server script stands in for ``vllm serve`` (it takes the same argv
through ``VllmBackend``'s python), journals when it starts and when it answers ``/health``,
records the ``VLLM_USE_V1`` it was given, and can fork an "engine" child into its group, as
vLLM's API server does, and hang its generate path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from babelcap.core.errors import BackendStartError
from babelcap.server.gateway import GatewayConfig, create_gateway
from babelcap.server.profiles import BUILTIN_PROFILES, Hardware, Profile, ServedModel
from babelcap.server.supervisor import Supervisor
from babelcap.server.vllm_process import VllmBackend

# Started as `<script> -m vllm.entrypoints.openai.api_server --model ... --port N ...`.
_STAND_IN = """\
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

argv = sys.argv
name = argv[argv.index("--served-model-name") + 1]
port = int(argv[argv.index("--port") + 1])
journal = os.environ["JOURNAL"]

def note(event, **more):
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": event, "name": name, "t": time.monotonic(),
                                 "VLLM_USE_V1": os.environ.get("VLLM_USE_V1"),
                                 "pid": os.getpid(), **more}) + "\\n")

note("start")
if os.environ.get("FAIL_START") == name:
    sys.exit(3)
if os.environ.get("ENGINE"):  # an engine child in the group, as vLLM's API server forks
    if os.fork() == 0:
        note("engine")
        while True:
            time.sleep(60)
time.sleep(float(os.environ.get("LOAD_S", "0.8")))  # "loading weights"

class Api(BaseHTTPRequestHandler):
    def _answer(self, body):
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._answer(b"vllm:num_requests_running 0.0\\n" if self.path == "/metrics" else b"")
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        note("probe")
        if os.path.exists(os.environ.get("HANG", "/nonexistent")):
            time.sleep(3600)  # a hung engine: /health still answers
        self._answer(b'{"choices": [{"text": "x"}]}')
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", port), Api)
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
    if not path.exists():
        return []
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


def _watched(
    tmp_path: Path, stand_in: Path, *, engine: bool = False, **settings: float
) -> Supervisor:
    env = {"JOURNAL": str(tmp_path / "journal"), "HANG": str(tmp_path / "hang"), "LOAD_S": "0.3"}
    if engine:
        env["ENGINE"] = "1"
    profile = _profile([_backend(tmp_path, "a", None, **env)], gpu=False)
    supervisor = Supervisor(
        profile, tmp_path / "logs", echo=False, python=str(stand_in), **settings
    )
    supervisor.start()
    return supervisor


async def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _pids(tmp_path: Path, event: str) -> list[int]:
    return [int(e["pid"]) for e in _journal(tmp_path / "journal") if e["event"] == event]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_a_dead_engine_child_gets_its_backend_restarted_though_health_answers(tmp_path, stand_in):
    supervisor = _watched(tmp_path, stand_in, engine=True, probe_interval_s=0)
    backend = supervisor.backends[0]
    seen: list[str] = []

    async def scenario() -> None:
        watch = asyncio.create_task(supervisor.watch(interval=0.1))
        [engine] = _pids(tmp_path, "engine")
        os.kill(engine, signal.SIGKILL)  # what the OOM killer picks; the API process lives on
        await _until(lambda: backend.state == "restarting")
        seen.append(backend.last_error or "")
        await _until(lambda: backend.state == "ready")
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)

    try:
        asyncio.run(scenario())
        assert backend.restarts == 1
        assert "is gone" in seen[0]
        assert len(_pids(tmp_path, "start")) == 2
        assert all(_gone(pid) for pid in _pids(tmp_path, "start")[:1])  # the old group is gone
    finally:
        supervisor.stop()
    assert all(_gone(pid) for pid in _pids(tmp_path, "start") + _pids(tmp_path, "engine"))


def test_a_hung_generate_path_fails_the_liveness_request_and_is_restarted(tmp_path, stand_in):
    supervisor = _watched(tmp_path, stand_in, probe_interval_s=0.2, probe_timeout_s=1.0)
    backend = supervisor.backends[0]

    async def scenario() -> None:
        watch = asyncio.create_task(supervisor.watch(interval=0.1))
        await _until(lambda: any(e["event"] == "probe" for e in _journal(tmp_path / "journal")))
        (tmp_path / "hang").touch()  # /health still answers 200
        await _until(lambda: backend.state == "restarting")
        (tmp_path / "hang").unlink()
        await _until(lambda: backend.state == "ready")
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)

    try:
        asyncio.run(scenario())
        assert backend.restarts == 1
        assert "no answer in 1 s" in (backend.last_error or "")
    finally:
        supervisor.stop()


def test_the_restart_budget_is_refilled_after_a_healthy_period(tmp_path, stand_in):
    supervisor = _watched(
        tmp_path, stand_in, max_restarts=1, healthy_reset_s=1.0, probe_interval_s=0
    )
    backend = supervisor.backends[0]
    states: list[tuple[str, int]] = []

    async def crash_and_recover() -> None:
        os.kill(_pids(tmp_path, "start")[-1], signal.SIGKILL)
        await _until(lambda: backend.state == "restarting")
        await _until(lambda: backend.state == "ready")
        states.append((backend.state, backend.restarts))

    async def scenario() -> None:
        watch = asyncio.create_task(supervisor.watch(interval=0.1))
        await crash_and_recover()
        await _until(lambda: backend.restarts == 0)  # ready for healthy_reset_s
        await crash_and_recover()  # a second crash is within the budget again
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)

    try:
        asyncio.run(scenario())
    finally:
        supervisor.stop()
    assert states == [("ready", 1), ("ready", 1)]


def test_a_backend_out_of_restarts_is_failed_and_answered_503_without_a_retry_promise(
    tmp_path, stand_in
):
    supervisor = _watched(tmp_path, stand_in, max_restarts=1, probe_interval_s=0)
    backend = supervisor.backends[0]

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        watch = asyncio.create_task(supervisor.watch(interval=0.1))
        os.kill(_pids(tmp_path, "start")[-1], signal.SIGKILL)
        await _until(lambda: backend.state == "restarting")
        await _until(lambda: backend.state == "ready")
        os.kill(_pids(tmp_path, "start")[-1], signal.SIGKILL)  # no restart left
        await _until(lambda: backend.state == "failed")
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        app = create_gateway(supervisor.backends, GatewayConfig())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            chat = await client.post(
                "/v1/chat/completions",
                json={"model": "a", "messages": [{"role": "user", "content": "hi"}]},
            )
            health = await client.get("/health")
        return chat, health

    try:
        chat, health = asyncio.run(scenario())
    finally:
        supervisor.stop()
    assert chat.status_code == 503 and "retry-after" not in chat.headers
    error = chat.json()["error"]
    assert error["code"] == "backend_failed"
    assert "failed for good" in error["message"] and "restart babelcap serve" in error["message"]
    assert health.status_code == 503
    assert health.json()["backends"] == {"a": "failed"}
    detail = health.json()["details"]["a"]
    assert detail["state"] == "failed" and detail["restarts"] == 1
    assert "exited with code -9" in detail["last_error"]
    assert len(_pids(tmp_path, "start")) == 2  # one restart, then no more


_OWNER = """\
import sys
from pathlib import Path
from babelcap.server.profiles import Profile
from babelcap.server.supervisor import Supervisor

profile = Profile.model_validate_json(Path(sys.argv[1]).read_text())
supervisor = Supervisor(profile, Path(sys.argv[2]), echo=False, python=sys.argv[3])
supervisor.start()
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_sigkilled_owner_leaves_no_process_of_its_backends_behind(tmp_path, stand_in):
    env = {"JOURNAL": str(tmp_path / "journal"), "ENGINE": "1", "LOAD_S": "0.3"}
    profile = _profile([_backend(tmp_path, n, None, **env) for n in ("a", "b")], gpu=False)
    (tmp_path / "profile.json").write_text(profile.model_dump_json(), encoding="utf-8")
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path / "profile.json"), str(tmp_path / "logs"),
         str(stand_in)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert owner.stdout is not None and owner.stdout.readline() == b"ready\n"
    pids = _pids(tmp_path, "start") + _pids(tmp_path, "engine")
    assert len(pids) == 4 and not any(_gone(pid) for pid in pids)
    owner.kill()  # no stop(): the API processes die with it, the keeper kills the engines
    owner.wait()
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, [pid for pid in pids if not _gone(pid)]
        time.sleep(0.1)
