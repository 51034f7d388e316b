"""Child processes babelcap owns: a free port to start one on, ``/health`` polled to a deadline
while the process is watched, a stop that reaches the whole process group, and the two guards
that end a group when its owner dies without stopping it: ``PR_SET_PDEATHSIG`` on the process it
started (:func:`die_with_parent`), and a :class:`GroupKeeper` that kills every registered group
once its owner is gone (a SIGKILLed owner included). The keeper is what reaches grandchildren
(vLLM's engine process): the kernel's parent-death signal only covers the direct child.

Both ``babelcap serve`` (one ``vllm serve`` per model, :mod:`babelcap.server.vllm_process`) and
the jobs that start ``babelcap serve`` itself (:mod:`babelcap.server.launch`) go through here.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import httpx

from babelcap.core.errors import BackendStartError

__all__ = [
    "GroupKeeper",
    "children",
    "die_with_parent",
    "free_port",
    "is_alive",
    "log_tail",
    "start_time",
    "stop_group",
    "wait_healthy",
]

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


_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A Popen ``preexec_fn`` that has the kernel send ``sig`` to the child when the thread that
    started it exits (Linux ``PR_SET_PDEATHSIG``); None where there is no prctl.

    Start such children from a thread that lives as long as they should (the main thread, or
    the event loop's): the signal follows the starting thread, not the process.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, before the fork: the child only calls it (no imports, no allocation).
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _stat(pid: str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children(pid: int) -> dict[int, str]:
    """The live (not zombie) processes whose parent is ``pid``, as pid -> start time."""
    found = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None and int(fields[1]) == pid and fields[0] not in "ZX":
            found[int(entry)] = fields[19]
    return found


def start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, as /proc gives it); None if it is gone."""
    fields = _stat(str(pid))
    return None if fields is None or fields[0] in "ZX" else fields[19]


def is_alive(pid: int, started: str) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs (not a zombie)."""
    fields = _stat(str(pid))
    return fields is not None and fields[19] == started and fields[0] not in "ZX"


# The keeper: reads "add PGID" / "drop PGID" lines; at end of input (its owner exited, however
# it died) it SIGKILLs every group still registered. It ignores the signals a terminal or a
# service manager sends to its owner, so that it outlives the owner long enough to clean up.
_KEEPER = """\
import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    op, _, pgid = line.partition(" ")
    (groups.add if op == "add" else groups.discard)(int(pgid))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class GroupKeeper:
    """A small process that SIGKILLs the registered process groups once this process is gone.

    Its input is a pipe only this process holds (children are started with ``close_fds``), so
    the kernel closes it on any exit, SIGKILL included, and the keeper wakes to clean up.
    """

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _KEEPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the owner's group does not reach it
        )

    def _send(self, line: str) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(OSError):
            stdin.write(line.encode() + b"\n")
            stdin.flush()

    def add(self, pgid: int) -> None:
        """Kill group ``pgid`` if this process dies before :meth:`drop`."""
        self._send(f"add {pgid}")

    def drop(self, pgid: int) -> None:
        """Forget group ``pgid`` (it was stopped)."""
        self._send(f"drop {pgid}")

    def close(self) -> None:
        """End the keeper; it kills whatever is still registered."""
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
