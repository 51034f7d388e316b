"""Start every vLLM backend of a profile, keep them up, and stop them all.

Backends start together (each takes a while), readiness is awaited to a deadline while each
process is watched, a backend that dies later is restarted with bounded exponential backoff,
and stop() ends every process group it started.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

from babelcap.core.errors import BackendStartError, ConfigurationError
from babelcap.server.backends import Backend
from babelcap.server.gpu import nvidia_smi
from babelcap.server.profiles import Profile
from babelcap.server.vllm_process import VllmProcess

__all__ = ["Supervisor", "preflight"]

log = logging.getLogger(__name__)


def preflight(profile: Profile) -> None:
    """Check what can be checked before anything starts; raise with what to do."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigurationError(
            "vLLM is not installed here: for the CPU stack run 'make stack' and use .venv/bin/"
            "babelcap; on a GPU machine pip install 'babelcap[gpu]'"
        )
    for served in profile.models:
        model = served.backend.model
        if model.is_absolute() and not model.exists():
            raise ConfigurationError(
                f"{served.backend.name}: model folder {model} does not exist; download it "
                "(huggingface-cli download ... --local-dir) or edit the profile"
            )
    if profile.translation is not None and not (profile.translation.model / "model.bin").exists():
        raise ConfigurationError(
            f"translation model {profile.translation.model} is missing: create it with "
            "'babelcap convert nllb --model ... --output ...'"
        )
    fraction = profile.gpu_memory_fraction()
    if fraction == 0:
        return
    listing = nvidia_smi("memory.free,memory.total", units=False)
    if listing is None:
        raise ConfigurationError(
            f"profile {profile.name} needs an NVIDIA GPU and none is visible; "
            "use --profile tiny-cpu here"
        )
    try:
        free, total = (float(v) for v in listing.strip().splitlines()[0].split(","))
    except (IndexError, ValueError):  # nvidia-smi failed: vLLM reports the GPU problem itself
        return
    if free < fraction * total:
        raise ConfigurationError(
            f"profile {profile.name} wants {fraction:.0%} of the GPU's {total:.0f} MiB but "
            f"only {free:.0f} MiB are free: stop what else runs there, or lower the "
            "profile's --gpu-memory-utilization"
        )


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
    ) -> None:
        self.profile = profile
        self.max_restarts = max_restarts
        self.processes = {
            m.backend.name: VllmProcess(
                m.backend, host=host, log_file=log_dir / f"{m.backend.name}.log", echo=echo
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
        """Start all backends and wait until each answers /health (or raise)."""
        try:
            for process in self.processes.values():
                process.start()
            for backend in self.backends:
                self.processes[backend.name].wait_ready(self.profile.startup_timeout_s)
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
