"""Child processes babelcap owns: a free port to start one on, ``/health`` polled to a deadline
while the process is watched, and a stop that reaches the whole process group.

Both ``babelcap serve`` (one ``vllm serve`` per model, :mod:`babelcap.server.vllm_process`) and
the jobs that start ``babelcap serve`` itself (:mod:`babelcap.server.launch`) go through here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

import httpx

from babelcap.core.errors import BackendStartError

__all__ = ["free_port", "log_tail", "stop_group", "wait_healthy"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a process log, for error messages."""
    if path is None or not path.exists():
        return "(no log file)"
    with path.open(encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


def wait_healthy(
    process: subprocess.Popen[bytes],
    health_url: str,
    *,
    name: str,
    timeout: float,
    log_file: Path | None = None,
    interval: float = 0.5,
) -> None:
    """Poll ``health_url`` until it answers 200; raise :class:`BackendStartError` with the log's
    last lines as soon as the process exits, or once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise BackendStartError(
                    f"{name} exited with code {code} before it was ready:\n{log_tail(log_file)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(health_url).status_code == 200:
                    return
            time.sleep(interval)
    raise BackendStartError(f"{name} was not ready after {timeout:.0f} s:\n{log_tail(log_file)}")


def stop_group(
    process: subprocess.Popen[bytes],
    *,
    name: str,
    first: signal.Signals = signal.SIGTERM,
    grace: float = 15.0,
) -> None:
    """Send ``first`` to the process group, wait up to ``grace`` seconds, then SIGKILL the group.

    The group is killed either way: workers may outlive the parent.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0f s; killing", name, grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
