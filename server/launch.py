"""Run ``babelcap serve`` as a child process for the length of a job (demo, benchmarks)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from babelcap.core import defaults
from babelcap.server.process import die_with_parent, free_port, stop_group, wait_healthy
from babelcap.server.profiles import DEFAULT_PROFILE

__all__ = ["Served", "local_server"]


@dataclass(frozen=True)
class Served:
    """A running ``babelcap serve``: its base URL and its process."""

    base: str
    process: subprocess.Popen[bytes]


@contextmanager
def local_server(
    logs: Path,
    *,
    profile: str = DEFAULT_PROFILE,
    config: Path | None = None,
    timeout: float = defaults.STARTUP_TIMEOUT_S,
    api_key: str | None = None,
) -> Iterator[Served]:
    """Start ``babelcap serve`` on a free loopback port, wait for ``/health``, yield it, and stop
    it as Ctrl-C does (it stops every vLLM process it started) on exit.

    Should this process die without that stop (SIGKILL), serve gets SIGTERM from the kernel
    (``PR_SET_PDEATHSIG``) and stops its backends the same way."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    source = ["--config", str(config)] if config else ["--profile", profile]
    key = ["--api-key", api_key] if api_key else []
    log_file = logs / "serve.out"
    with log_file.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "babelcap", "serve", *source, "--port", str(port),
             "--log-dir", str(logs), *key],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(
                process, f"{base}/health", name="babelcap serve", timeout=timeout,
                log_file=log_file,
            )  # fmt: skip
            yield Served(base, process)
        finally:
            # SIGINT, as Ctrl-C: the server stops its own vLLM process groups before it exits.
            stop_group(process, name="babelcap serve", first=signal.SIGINT, grace=60.0)
