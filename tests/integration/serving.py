"""`babelcap serve --profile tiny-cpu` as a test sees it: started, found, and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from server.vllm_process import free_port

KEY = "test-key-0123"


@contextmanager
def running_gateway(logs: Path, api_key: str = KEY) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the real `babelcap serve`, wait for /health, yield (base URL, process), then stop it
    as Ctrl-C does and check that every vLLM process it started is gone."""
    port = free_port()
    output = (logs / "serve.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "serve", "--profile", "tiny-cpu", "--port", str(port),
         "--api-key", api_key, "--log-dir", str(logs)],
        stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    backends: list[int] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert process.poll() is None, (logs / "serve.out").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        backends = vllm_children(process.pid)
        assert len(backends) == 2, (logs / "serve.out").read_text()[-3000:]
        yield base, process
    finally:
        backends += vllm_children(process.pid)  # restarted ones too
        process.send_signal(signal.SIGINT)  # what Ctrl-C does
        process.wait(timeout=60)
        output.close()
    # Every vLLM process the supervisor started is gone with it.
    time.sleep(1)
    assert [pid for pid in backends if os.path.exists(f"/proc/{pid}")] == []


def vllm_children(parent: int) -> list[int]:
    """The vLLM server processes started by ``parent``."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except OSError:
            continue
        if ppid == parent and b"vllm.entrypoints" in command:
            children.append(int(entry))
    return children


def cmdline(pid: int) -> bytes:
    """A process's command line, NUL-separated."""
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read()


def kill_backend(serve_pid: int, name: str) -> int:
    """SIGKILL the vLLM process group serving ``name``; returns its pid."""
    pid = next(p for p in vllm_children(serve_pid) if name.encode() in cmdline(p))
    os.killpg(pid, signal.SIGKILL)
    return pid
