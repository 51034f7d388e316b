"""Start, watch and stop one ``vllm serve`` process (the CPU or GPU build) for one model.

The argv is built from a typed spec, never from code constants; readiness is ``/health`` polled
to a deadline while the process is watched, so a crash fails fast with its last log lines; once
ready, the API server and the processes it started (its engine) are recorded, and
:meth:`VllmProcess.problem` names the first that is gone. Stop terminates the
whole process group, waits, then kills. The API process dies with its parent
(``PR_SET_PDEATHSIG``), and a :class:`~babelcap.server.process.GroupKeeper` given to it kills
the whole group (engine processes included) if the parent dies without stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
from pydantic import BaseModel, ConfigDict, Field

from babelcap.core import defaults
from babelcap.core.errors import BackendStartError
from babelcap.server.process import (
    GroupKeeper,
    children,
    die_with_parent,
    free_port,
    is_alive,
    log_tail,
    start_time,
    stop_group,
    wait_healthy,
)

__all__ = ["VllmBackend", "VllmProcess", "installed_vllm_version", "tiny_cpu_backends"]

log = logging.getLogger(__name__)


class VllmBackend(BaseModel):
    """One model served by one ``vllm serve`` process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="id clients send as `model` (vLLM's --served-model-name)")
    model: Path = Field(description="model folder (absolute; no hub downloads here)")
    dtype: str = Field("auto", description="vLLM --dtype: auto, float32, bfloat16, float16")
    max_model_len: int = Field(2048, gt=0, description="vLLM --max-model-len")
    max_num_seqs: int = Field(16, gt=0, description="vLLM --max-num-seqs (batch size)")
    enforce_eager: bool = Field(True, description="vLLM --enforce-eager (no CUDA graphs)")
    limit_mm_per_prompt: str | None = Field(
        None, description='vLLM --limit-mm-per-prompt, e.g. {"image": 1}'
    )
    log_requests: bool = Field(
        False,
        description="let vLLM log every request's prompt and an access line (off: prompts are "
        "users' data, and the logging costs CPU per request)",
    )
    extra_args: tuple[str, ...] = Field((), description="further vLLM arguments, verbatim")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="environment for the process (e.g. VLLM_CPU_KVCACHE_SPACE)",
    )

    def argv(
        self,
        host: str,
        port: int,
        python: str | None = None,
        vllm_version: tuple[int, ...] | None = None,
    ) -> list[str]:
        """The command line that serves this model on ``host:port``.

        ``vllm_version`` (default: the vLLM installed beside this interpreter) picks the flags
        that version takes without a deprecation warning.
        """
        argv = [
            python or sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model),
            "--served-model-name",
            self.name,
            "--host",
            host,
            "--port",
            str(port),
            "--dtype",
            self.dtype,
            "--max-model-len",
            str(self.max_model_len),
            "--max-num-seqs",
            str(self.max_num_seqs),
        ]
        if self.enforce_eager:
            argv.append("--enforce-eager")
        if self.limit_mm_per_prompt:
            argv += ["--limit-mm-per-prompt", self.limit_mm_per_prompt]
        if (vllm_version or installed_vllm_version()) >= (0, 10, 2):
            # 0.10.2 logs no requests unless asked, and deprecates --disable-log-requests.
            argv += ["--enable-log-requests"] if self.log_requests else []
        elif not self.log_requests:
            argv.append("--disable-log-requests")  # the CPU build (0.9.2) logs them by default
        if not self.log_requests:
            argv.append("--disable-uvicorn-access-log")
        return argv + list(self.extra_args)


@functools.cache
def installed_vllm_version() -> tuple[int, ...]:
    """The installed vLLM's release as numbers (``vllm`` or the CPU build's ``vllm-cpu``
    distribution); the GPU stack's pin, (0, 10, 2), where neither is installed."""
    for distribution in ("vllm", "vllm-cpu"):
        try:
            text = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])
    return (0, 10, 2)


def tiny_cpu_backends(dtype: str = "float32") -> list[VllmBackend]:
    """The committed tiny Mllama and LLaVA-NeXT-Video stand-ins on the CPU vLLM build."""
    from babelcap.core.artifacts import stand_in

    cpu_env = {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # One unpinned OpenMP thread per tiny engine: by default each engine binds a thread to
        # every core, so two engines spin four threads on a 2-core machine (measured slower).
        "VLLM_CPU_OMP_THREADS_BIND": "all",
        "OMP_NUM_THREADS": "1",
    }
    return [
        VllmBackend(
            name="tiny-mllama",
            model=stand_in("mllama"),
            dtype=dtype,
            limit_mm_per_prompt='{"image": 1}',
            env=cpu_env,
        ),
        VllmBackend(
            name="tiny-llava-next-video",
            model=stand_in("llava-next-video"),
            dtype=dtype,
            limit_mm_per_prompt='{"video": 1}',
            env=cpu_env,
        ),
    ]


class VllmProcess:
    """A running ``vllm serve``: ``start()``, ``wait_ready()``, ``stop()``; a context manager."""

    def __init__(
        self,
        backend: VllmBackend,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_file: Path | None = None,
        python: str | None = None,
        echo: bool = False,
        keeper: GroupKeeper | None = None,
    ) -> None:
        """``keeper`` (if given) kills the process group should this process die first."""
        self.backend = backend
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.python = python
        self.echo = echo
        self._echo_thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.keeper = keeper
        # Every process of the group once ready: pid -> (start time, command name).
        self._members: dict[int, tuple[str, str]] = {}

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> None:
        """Launch the process in its own process group (so stop() reaches its workers too).

        Call it from a thread that outlives the process (the main or event-loop thread): the
        process is killed when the thread that started it exits (``PR_SET_PDEATHSIG``).
        """
        if not self.backend.model.is_dir():
            raise BackendStartError(
                f"{self.backend.name}: model folder {self.backend.model} does not exist; "
                "build the tiny models with 'babelcap tiny build' or point the profile at a model"
            )
        argv = self.backend.argv(self.host, self.port, self.python)
        log.info("starting %s on %s: %s", self.backend.name, self.base_url, " ".join(argv))
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("wb")
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.echo else (self._log or subprocess.DEVNULL),
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                # vLLM keeps idle connections open longer than the gateway's pool does, so
                # the gateway never sends a request on one vLLM is closing at that moment.
                "VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(defaults.BACKEND_KEEP_ALIVE_S),
                **self.backend.env,
            },
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        self._members = {}
        if self.keeper is not None:
            self.keeper.add(self._process.pid)
        if self.echo:
            self._echo_thread = threading.Thread(
                target=self._copy_output, args=(self._process,), daemon=True
            )
            self._echo_thread.start()

    def _copy_output(self, process: subprocess.Popen[bytes]) -> None:
        """Copy the process output to the log file and, prefixed, to stderr."""
        assert process.stdout is not None
        prefix = f"[{self.backend.name}] ".encode()
        for line in process.stdout:
            if self._log is not None:
                self._log.write(line)
                self._log.flush()
            sys.stderr.buffer.write(prefix + line)
            sys.stderr.buffer.flush()

    def wait_ready(self, timeout: float = defaults.STARTUP_TIMEOUT_S) -> None:
        """Poll ``/health`` until it answers 200, the process exits, or ``timeout`` passes."""
        if self._process is None:
            raise BackendStartError(f"{self.backend.name}: wait_ready() before start()")
        wait_healthy(
            self._process,
            f"http://{self.host}:{self.port}/health",
            name=f"{self.backend.name} (vllm)",
            timeout=timeout,
            log_file=self.log_file,
            interval=1.0,
        )
        self._record_members()

    async def wait_ready_async(self, timeout: float = defaults.STARTUP_TIMEOUT_S) -> None:
        """:meth:`wait_ready` for an event loop (cancellable: a restart that serve's shutdown
        interrupts does not keep a thread polling)."""
        process = self._process
        if process is None:
            raise BackendStartError(f"{self.backend.name}: wait_ready() before start()")
        name = f"{self.backend.name} (vllm)"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                code = process.poll()
                if code is not None:
                    raise BackendStartError(
                        f"{name} exited with code {code} before it was ready:\n"
                        f"{log_tail(self.log_file)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(f"http://{self.host}:{self.port}/health")
                    if answer.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BackendStartError(
                        f"{name} was not ready after {timeout:.0f} s:\n{log_tail(self.log_file)}"
                    )
                await asyncio.sleep(1.0)
        self._record_members()

    def _record_members(self) -> None:
        """Remember the processes that must live as long as the backend, as they are once it
        is ready, for :meth:`problem`: the API server and the processes it started itself
        (its engine: V0's MQLLMEngine, V1's EngineCore, which watches its own workers), but not
        multiprocessing's resource tracker, nor what the engine starts for a moment (py-cpuinfo
        runs as two short-lived processes while the engine starts: recorded, their normal exit
        read as the engine's death and the backend was restarted until it gave up)."""
        assert self._process is not None
        api = self._process.pid
        self._members = {}
        for pid, started in {api: start_time(api), **children(api)}.items():
            name = _command_name(pid)
            if started is not None and "multiprocessing.resource_tracker" not in _cmdline(pid):
                self._members[pid] = (started, name)
        log.info(
            "%s is ready on %s (processes: %s)",
            self.backend.name,
            self.base_url,
            ", ".join(f"{pid} {name}" for pid, (_, name) in sorted(self._members.items())),
        )

    def alive(self) -> bool:
        """Whether the process is running."""
        return self._process is not None and self._process.poll() is None

    def problem(self) -> str | None:
        """What is wrong with a started process: the API process exited, or one of the group's
        processes recorded when it became ready (the engine) is gone; None when all run."""
        if self._process is None:
            return "not started"
        code = self._process.poll()
        if code is not None:
            return f"the vLLM API process exited with code {code}"
        for pid, (started, name) in sorted(self._members.items()):
            if not is_alive(pid, started):
                return f"its process {pid} ({name}) is gone (the engine died or was killed)"
        return None

    def stop(self, grace: float = 15.0, first: signal.Signals = signal.SIGTERM) -> None:
        """Send ``first`` (SIGTERM) to the process group, wait up to ``grace`` seconds, then
        SIGKILL it."""
        process, self._process = self._process, None
        self._members = {}
        if process is not None:
            stop_group(process, name=self.backend.name, first=first, grace=grace)
            if self.keeper is not None:
                self.keeper.drop(process.pid)
        if self._echo_thread is not None:
            self._echo_thread.join(timeout=5)
            self._echo_thread = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VllmProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _command_name(pid: int) -> str:
    """The process's command name (``/proc/PID/comm``), for messages."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return "?"
