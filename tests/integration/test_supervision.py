"""Supervision that sees every death, with the real stack: `babelcap serve` stopped by SIGTERM,
SIGHUP, SIGKILL of its parent or SIGKILL of itself leaves no process behind (its vLLM API
processes, their engine processes, the group keeper); a killed engine child (what the OOM killer
picks) gets its backend restarted, with 503s, not hangs, in between."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
from babelcap.server.launch import local_server
from babelcap.server.profiles import load_profile
from tests.integration.serving import KEY, cmdline, vllm_children

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# The start-up time this machine allows a vLLM process (tiny-cpu's startup_timeout_s).
_STARTUP_S = load_profile("tiny-cpu").startup_timeout_s


def _image_only(tmp_path: Path) -> Path:
    """tiny-cpu with only its image model and no translator: half the start-up."""
    tiny = load_profile("tiny-cpu")
    profile = tiny.model_copy(
        update={"name": "tiny-image", "models": tiny.models[:1], "translation": None}
    )
    path = tmp_path / "tiny-image.json"
    path.write_text(profile.model_dump_json(), encoding="utf-8")
    return path


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _descendants(root: int) -> set[int]:
    """Every process below ``root`` (children, grandchildren ...)."""
    parents = {}
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields is not None:
            parents[int(entry)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def _running(pids: set[int]) -> set[int]:
    return {pid for pid in pids if (fields := _stat(pid)) is not None and fields[0] not in "ZX"}


def _assert_all_gone(pids: set[int], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while left := _running(pids):
        assert time.monotonic() < deadline, {pid: cmdline(pid)[:120] for pid in left}
        time.sleep(0.2)


def _tree(serve_pid: int) -> set[int]:
    """serve's processes: its vLLM API process, that one's engine and helpers, the keeper."""
    tree = _descendants(serve_pid)
    [api] = vllm_children(serve_pid)
    assert any(b"spawn_main" in cmdline(pid) for pid in _descendants(api)), "no engine child"
    assert len(tree) >= 4, tree  # API process, engine, resource tracker, keeper
    return tree | {serve_pid}


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_stops_every_process_of_serve(tmp_path, sig, status):
    with local_server(tmp_path / "logs", config=_image_only(tmp_path)) as served:
        tree = _tree(served.process.pid)
        served.process.send_signal(sig)
        assert served.process.wait(timeout=60) == status
        _assert_all_gone(tree)


def test_sigkill_of_serve_leaves_no_vllm_process_behind(tmp_path):
    with local_server(tmp_path / "logs", config=_image_only(tmp_path)) as served:
        tree = _tree(served.process.pid)
        served.process.kill()
        served.process.wait(timeout=10)
        _assert_all_gone(tree, deadline_s=20)


_PARENT = """\
import sys, time
from pathlib import Path
from babelcap.server.launch import local_server
with local_server(Path(sys.argv[1]), config=Path(sys.argv[2])) as served:
    print(served.process.pid, flush=True)
    time.sleep(3600)
"""


def test_sigkill_of_the_parent_of_serve_stops_serve_and_all_it_started(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "logs"), str(_image_only(tmp_path))],
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        serve_pid = int(parent.stdout.readline() or b"0")
        assert serve_pid, (tmp_path / "logs" / "serve.out").read_text()[-3000:]
        tree = _tree(serve_pid)
        parent.kill()  # serve gets SIGTERM from the kernel and stops as it does on SIGTERM
        parent.wait(timeout=10)
        _assert_all_gone(tree)
    finally:
        parent.kill()
        parent.wait()


def _red_image() -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), COLOURS["red"]).save(buffer, "JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize("victim", ["engine", "api"])
def test_a_killed_vllm_process_under_load_gets_503s_then_the_model_answers_again(gateway, victim):
    """Killing the engine child (the OOM killer's pick: the API process lives on and its
    /health says 200) or the API process, with requests in flight: every request gets a 200
    or a 503 with Retry-After, none hangs past its timeout, and the model answers again
    within the start-up time plus 30 s."""
    base, process = gateway
    headers = {"Authorization": f"Bearer {KEY}"}
    [api] = [pid for pid in vllm_children(process.pid) if b"tiny-mllama" in cmdline(pid)]
    [engine] = [pid for pid in _descendants(api) if b"spawn_main" in cmdline(pid)]
    body = {
        "model": "tiny-mllama",
        "messages": [
            {"role": "user", "content": [_red_image(), {"type": "text", "text": "Describe it."}]}
        ],
        "max_tokens": 30,
        "temperature": 0,
    }
    outcomes: list[tuple[float, int | str, httpx.Response | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30.0) as client:  # a hanging request shows as "timeout"
            while not stop.is_set():
                try:
                    answer = client.post(f"{base}/v1/chat/completions", json=body, headers=headers)
                except httpx.TimeoutException:
                    outcomes.append((time.monotonic(), "timeout", None))
                    continue
                outcomes.append((time.monotonic(), answer.status_code, answer))
                if answer.status_code != 200:
                    time.sleep(1)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        while not any(status == 200 for _, status, _ in outcomes):
            time.sleep(0.2)
        os.kill(engine if victim == "engine" else api, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + _STARTUP_S + 30
        while not any(at > killed + 5 and status == 200 for at, status, _ in outcomes):
            assert time.monotonic() < deadline, f"tiny-mllama did not come back: {outcomes}"
            time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    statuses = [status for _, status, _ in outcomes]
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses
    for _, status, answer in outcomes:
        assert answer is not None
        if status == 503:
            assert answer.headers["retry-after"] == "5"
        else:
            assert answer.json()["choices"][0]["message"]["content"] == "The image is mostly red."
    health = httpx.get(f"{base}/health").json()
    assert health["details"]["tiny-mllama"]["restarts"] >= 1
    assert not _running({api, engine})
