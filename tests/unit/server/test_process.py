"""Child processes: readiness to a deadline while watched, and a stop that reaches the group."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from babelcap.core.errors import BackendStartError
from babelcap.server.process import free_port, stop_group, wait_healthy


def test_a_child_that_dies_fails_fast_with_its_last_log_lines(tmp_path):
    log = tmp_path / "child.log"
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-c", "print('model folder is empty'); raise SystemExit(3)"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started = time.monotonic()
        with pytest.raises(BackendStartError) as caught:
            wait_healthy(
                child, f"http://127.0.0.1:{free_port()}/health", name="child", timeout=60,
                log_file=log, interval=0.1,
            )  # fmt: skip
    assert time.monotonic() - started < 30
    assert "child exited with code 3" in str(caught.value)
    assert "model folder is empty" in str(caught.value)


def test_a_child_that_never_answers_times_out(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             start_new_session=True)  # fmt: skip
    try:
        with pytest.raises(BackendStartError, match="child was not ready after 1 s"):
            wait_healthy(child, f"http://127.0.0.1:{free_port()}/health", name="child",
                         timeout=1, interval=0.1)  # fmt: skip
    finally:
        stop_group(child, name="child", grace=5)
    assert child.returncode is not None


def test_stop_kills_the_whole_group_even_a_child_that_ignores_the_signal():
    # The parent ignores SIGTERM and starts a grandchild that does too.
    code = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "p = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              start_new_session=True)  # fmt: skip
    assert parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    stop_group(parent, name="parent", grace=1)
    assert parent.returncode is not None
    for _ in range(50):
        if not os.path.exists(f"/proc/{grandchild}") or _zombie(grandchild):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{grandchild}") or _zombie(grandchild)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


_VLLM_LIKE = """
import subprocess, sys, time
# The "engine": a child that starts a helper for a moment (as py-cpuinfo runs in vLLM's engine).
engine = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time\\n"
    "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1.5)'])\\n"
    "print('helper', flush=True)\\n"
    "helper.wait(); time.sleep(600)"], stdout=sys.stdout)
print(engine.pid, flush=True)
time.sleep(600)
"""


def test_a_backend_watches_its_engine_not_the_helpers_the_engine_starts_for_a_moment():
    """Recorded while the engine's short-lived helper ran, the helper's normal exit was taken
    for the engine's death, and the backend restarted until it gave up."""
    from babelcap.server.vllm_process import VllmProcess, tiny_cpu_backends

    backend = VllmProcess(tiny_cpu_backends()[0])
    process = subprocess.Popen([sys.executable, "-c", _VLLM_LIKE], stdout=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        assert process.stdout is not None
        engine = int(process.stdout.readline())
        assert process.stdout.readline().strip() == "helper"  # the helper runs now
        backend._process = process  # type: ignore[assignment]
        backend._record_members()
        assert set(backend._members) == {process.pid, engine}
        time.sleep(2.0)  # the helper has exited
        assert backend.problem() is None
        os.kill(engine, 9)
        deadline = time.monotonic() + 10
        while backend.problem() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"its process {engine}" in (backend.problem() or "")
    finally:
        stop_group(process, name="vllm-like", grace=2)
