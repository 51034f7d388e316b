"""`babelcap serve --profile tiny-cpu` as a test sees it: started, found, and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from babelcap.server.launch import local_server

KEY = "test-key-0123"


@contextmanager
def running_gateway(logs: Path, api_key: str = KEY) -> Iterator[tuple[str, subprocess.Popen]]:
    """The real `babelcap serve` (started as demo and bench start it), yielding (base URL,
    process); on exit it is stopped as Ctrl-C does, and every vLLM process it started, restarted
    ones included, must be gone."""
    backends: list[int] = []
    with local_server(logs, api_key=api_key) as served:
        backends = vllm_children(served.process.pid)
        assert len(backends) == 2, (logs / "serve.out").read_text()[-3000:]
        try:
            yield served.base, served.process
        finally:
            backends += vllm_children(served.process.pid)  # restarted ones too
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
