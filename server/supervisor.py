"""Start every vLLM backend of a profile, keep them up, and stop them all.

On a GPU, backends start one after another, each healthy before the next starts: vLLM measures
memory over the whole device while it starts, so two engines starting together count each
other's weights. A CPU profile with no GPU share starts them together (each takes a while).
Readiness is awaited to a deadline while each process is watched, a backend that dies later is
restarted with bounded exponential backoff, and stop() ends every process group it started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from babelcap.core.errors import BackendStartError
from babelcap.server.backends import Backend
from babelcap.server.profiles import Profile
from babelcap.server.vllm_process import VllmProcess

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)


class Supervisor:
    """The vLLM processes of one profile."""

    def __init__(
        self,
        profile: Profile,
        log_dir: Path,
        *,
        host: str = "127.0.0.1",
        echo: bool = True,
        max_restarts: int = 5,
        python: str | None = None,
    ) -> None:
        """``python`` runs ``-m vllm.entrypoints.openai.api_server`` (default: this one)."""
        self.profile = profile
        self.max_restarts = max_restarts
        self.processes = {
            m.backend.name: VllmProcess(
                m.backend,
                host=host,
                log_file=log_dir / f"{m.backend.name}.log",
                echo=echo,
                python=python,
            )
            for m in profile.models
        }
        self.backends = [
            Backend(
                m.backend.name,
                m.role,
                self.processes[m.backend.name].base_url[:-3],
                m.media.model_dump(),
            )
            for m in profile.models
        ]
        self.restarts = dict.fromkeys(self.processes, 0)

    def start(self) -> None:
        """Start all backends and wait until each answers /health (or raise): one after
        another where :meth:`Profile.starts_one_by_one`, else all at once."""
        timeout = self.profile.startup_timeout_s
        try:
            if self.profile.starts_one_by_one():
                for n, backend in enumerate(self.backends, 1):
                    log.info(
                        "starting %s (%d of %d, one at a time)", backend.name, n, len(self.backends)
                    )
                    self.processes[backend.name].start()
                    self.processes[backend.name].wait_ready(timeout)
                    backend.state = "ready"
                return
            for process in self.processes.values():
                process.start()
            for backend in self.backends:
                self.processes[backend.name].wait_ready(timeout)
                backend.state = "ready"
        except BackendStartError:
            self.stop()
            raise

    async def watch(
        self, on_restart: Callable[[str], None] | None = None, interval: float = 2.0
    ) -> None:
        """Restart crashed backends with backoff (2, 4, 8 ... 60 s), at most max_restarts."""
        while True:
            await asyncio.sleep(interval)
            for backend in self.backends:
                process = self.processes[backend.name]
                if backend.state not in ("ready", "restarting") or process.alive():
                    continue
                if self.restarts[backend.name] >= self.max_restarts:
                    backend.state = "failed"
                    log.error("%s died %d times; giving up", backend.name, self.max_restarts)
                    continue
                backend.state = "restarting"
                self.restarts[backend.name] += 1
                delay = min(60.0, 2.0 ** self.restarts[backend.name])
                log.warning("%s died; restarting in %.0f s", backend.name, delay)
                if on_restart is not None:
                    on_restart(backend.name)
                await asyncio.sleep(delay)
                process.stop()
                try:
                    process.start()
                    await asyncio.to_thread(process.wait_ready, self.profile.startup_timeout_s)
                    backend.state = "ready"
                except BackendStartError as error:
                    log.error("%s", error)
                    process.stop()  # not alive: the next pass tries again, if any tries are left

    def stop(self) -> None:
        """Stop every process group (terminate, wait, kill)."""
        for process in self.processes.values():
            process.stop()
