"""Start every vLLM backend of a profile, keep them up, and stop them all.

On a GPU, backends start one after another, each healthy before the next starts: vLLM measures
memory over the whole device while it starts, so two engines starting together count each
other's weights. A CPU profile with no GPU share starts them together (each takes a while).
Readiness is awaited to a deadline while each process is watched.

Once ready, a backend is watched three ways: every process of its group (the API server and
the engine it forked: vLLM's API server keeps answering ``/health`` with its engine dead), a
1-token completion through the real generate path while it is idle, and the engine's token
counters while it is busy (a hung engine produces none). A backend that fails any of them is
killed and restarted with bounded exponential backoff; ``max_restarts`` tries, a budget that
is refilled after ``healthy_reset_s`` ready, then it is ``failed`` for good. stop() ends every
process group it started; a :class:`GroupKeeper` ends them if this process dies first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from babelcap.core.errors import BackendStartError
from babelcap.server.backends import Backend
from babelcap.server.process import GroupKeeper
from babelcap.server.profiles import Profile
from babelcap.server.vllm_process import VllmProcess

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)

_BUSY = ("vllm:num_requests_running", "vllm:num_requests_waiting")
_PROGRESS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")


def _load(text: str) -> tuple[float, float]:
    """(requests running or waiting, prompt + generated tokens so far) from vLLM's metrics."""
    busy = progress = 0.0
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in _BUSY or name in _PROGRESS:
            value = float(line.rsplit(" ", 1)[1])
            if name in _BUSY:
                busy += value
            else:
                progress += value
    return busy, progress


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
        healthy_reset_s: float = 600.0,
        probe_interval_s: float = 30.0,
        probe_timeout_s: float = 60.0,
    ) -> None:
        """``python`` runs ``-m vllm.entrypoints.openai.api_server`` (default: this one).
        ``healthy_reset_s``: ready this long refills the restart budget. ``probe_interval_s``:
        how often an idle backend gets a 1-token request (0: never); it, or a busy engine's
        token counters, must answer within ``probe_timeout_s``."""
        self.profile = profile
        self.max_restarts = max_restarts
        self.healthy_reset_s = healthy_reset_s
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.keeper: GroupKeeper | None = None
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
        for backend in self.backends:
            backend.max_restarts = max_restarts
        self._ready_since = dict.fromkeys(self.processes, 0.0)
        self._next_probe = dict.fromkeys(self.processes, 0.0)
        self._progress: dict[str, tuple[float, float]] = {}  # tokens, since when unchanged

    def start(self) -> None:
        """Start all backends and wait until each answers /health (or raise): one after
        another where :meth:`Profile.starts_one_by_one`, else all at once."""
        timeout = self.profile.startup_timeout_s
        self.keeper = self.keeper or GroupKeeper()
        for process in self.processes.values():
            process.keeper = self.keeper
        try:
            if self.profile.starts_one_by_one():
                for n, backend in enumerate(self.backends, 1):
                    log.info(
                        "starting %s (%d of %d, one at a time)", backend.name, n, len(self.backends)
                    )
                    self.processes[backend.name].start()
                    self.processes[backend.name].wait_ready(timeout)
                    self._ready(backend)
                return
            for process in self.processes.values():
                process.start()
            for backend in self.backends:
                self.processes[backend.name].wait_ready(timeout)
                self._ready(backend)
        except BaseException:  # a failed start, Ctrl-C or a stop signal: nothing stays behind
            self.stop()
            raise

    def _ready(self, backend: Backend) -> None:
        backend.state = "ready"
        now = time.monotonic()
        self._ready_since[backend.name] = now
        self._next_probe[backend.name] = now + self.probe_interval_s
        self._progress.pop(backend.name, None)

    async def watch(
        self, on_restart: Callable[[str], None] | None = None, interval: float = 2.0
    ) -> None:
        """Every ``interval`` seconds, check each ready backend (its processes; the liveness
        request when due) and restart a dead or hung one in the background: backoff 2, 4, 8
        ... 60 s, at most max_restarts times until it has been ready ``healthy_reset_s``."""
        restarts: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                await asyncio.sleep(interval)
                now = time.monotonic()
                ready = [b for b in self.backends if b.state == "ready"]
                problems = {b.name: self.processes[b.name].problem() for b in ready}
                due = [
                    b
                    for b in ready
                    if problems[b.name] is None
                    and self.probe_interval_s > 0
                    and now >= self._next_probe[b.name]
                ]
                for backend, problem in zip(
                    due, await asyncio.gather(*(self._probe(b) for b in due)), strict=True
                ):
                    self._next_probe[backend.name] = time.monotonic() + self.probe_interval_s
                    problems[backend.name] = problem
                for backend in ready:
                    problem = problems[backend.name]
                    if problem is None:
                        self._refill(backend, now)
                    elif backend.name not in restarts or restarts[backend.name].done():
                        backend.state = "restarting"  # the gateway answers 503 from now on
                        backend.last_error = problem
                        restarts[backend.name] = asyncio.create_task(
                            self._restart(backend, problem, on_restart)
                        )
        finally:
            for task in restarts.values():
                task.cancel()
            await asyncio.gather(*restarts.values(), return_exceptions=True)

    def _refill(self, backend: Backend, now: float) -> None:
        if backend.restarts and now - self._ready_since[backend.name] >= self.healthy_reset_s:
            log.info(
                "%s has been ready %.0f s; its restart budget is full again (%d)",
                backend.name, self.healthy_reset_s, self.max_restarts,
            )  # fmt: skip
            backend.restarts = 0

    async def _probe(self, backend: Backend) -> str | None:
        """None when the engine works: an idle one answers a 1-token completion, a busy one's
        token counters moved within ``probe_timeout_s``; else what is wrong."""
        timeout = self.probe_timeout_s
        try:
            async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=timeout) as client:
                metrics = await client.get(f"{backend.base_url}/metrics")
                busy, progress = _load(metrics.text) if metrics.status_code == 200 else (0, 0)
                if busy:
                    now = time.monotonic()
                    last, since = self._progress.get(backend.name, (-1.0, now))
                    if progress != last:
                        self._progress[backend.name] = (progress, now)
                    elif now - since > timeout:
                        return f"requests in flight but no token in {now - since:.0f} s (hung)"
                    return None
                self._progress.pop(backend.name, None)
                answer = await client.post(
                    f"{backend.base_url}/v1/completions",
                    json={"model": backend.name, "prompt": "ping", "max_tokens": 1},
                )
        except TimeoutError:
            return f"the liveness request (1 token) got no answer in {timeout:.0f} s (hung)"
        except httpx.HTTPError as error:
            return f"the liveness request failed ({type(error).__name__}: {error})"
        if answer.status_code >= 500:
            return f"the liveness request answered {answer.status_code}: {answer.text[:200]}"
        return None

    async def _restart(
        self, backend: Backend, problem: str, on_restart: Callable[[str], None] | None
    ) -> None:
        """Kill the backend's group now (a hung engine holds requests), then start it again
        after the backoff, until it is ready or the budget is spent (``failed``)."""
        process = self.processes[backend.name]
        log.warning("%s: %s; stopping its processes", backend.name, problem)
        await asyncio.to_thread(process.stop, 5.0)
        while True:
            if backend.restarts >= self.max_restarts:
                backend.state = "failed"
                log.error(
                    "%s failed %d times in a row (last: %s); giving up: restart babelcap serve",
                    backend.name, backend.restarts + 1, backend.last_error,
                )  # fmt: skip
                return
            backend.restarts += 1
            delay = min(60.0, 2.0**backend.restarts)
            log.warning(
                "%s: restart %d of %d in %.0f s",
                backend.name, backend.restarts, self.max_restarts, delay,
            )  # fmt: skip
            if on_restart is not None:
                on_restart(backend.name)
            await asyncio.sleep(delay)
            try:
                process.start()  # on the event loop's thread, which lives as long as serve
                await process.wait_ready_async(self.profile.startup_timeout_s)
            except (BackendStartError, OSError) as error:
                backend.last_error = str(error).splitlines()[0]
                log.error("%s", error)
                await asyncio.to_thread(process.stop, 5.0)
                continue
            self._ready(backend)
            return

    def stop(self) -> None:
        """Stop every process group (terminate, wait, kill), all at once."""
        processes = list(self.processes.values())
        with ThreadPoolExecutor(max_workers=max(1, len(processes))) as pool:
            list(pool.map(lambda process: process.stop(), processes))
        if self.keeper is not None:
            self.keeper.close()
            self.keeper = None
