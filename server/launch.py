"""Run ``babelcap serve`` as a child process for the length of a job (demo, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from babelcap.core.errors import BackendStartError

__all__ = ["Served", "local_server"]


@dataclass(frozen=True)
class Served:
    """A running ``babelcap serve``: its base URL and its process."""

    base: str
    process: subprocess.Popen[bytes]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # the server stops its vLLM process groups itself
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def local_server(
    logs: Path,
    *,
    profile: str = "tiny-cpu",
    config: Path | None = None,
    timeout: float = 600.0,
    api_key: str | None = None,
) -> Iterator[Served]:
    """Start ``babelcap serve`` on a free loopback port, wait for ``/health``, yield it, and stop
    it as Ctrl-C does (it stops every vLLM process it started) on exit."""
    from babelcap.server.vllm_process import free_port

    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    source = ["--config", str(config)] if config else ["--profile", profile]
    key = ["--api-key", api_key] if api_key else []
    with (logs / "serve.out").open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "babelcap", "serve", *source, "--port", str(port),
             "--log-dir", str(logs), *key],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    tail = (logs / "serve.out").read_text("utf-8", errors="replace")[-2000:]
                    raise BackendStartError(
                        f"babelcap serve exited with {process.returncode}:\n{tail}"
                    )
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise BackendStartError(
                        f"babelcap serve was not healthy after {timeout:.0f} s; see {logs}"
                    )
                time.sleep(0.5)
            yield Served(f"http://127.0.0.1:{port}", process)
        finally:
            _stop(process)
