"""Shared fixtures: real vLLM servers (CPU build) for the tiny stand-ins, started once a session."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.vllm_process import VllmProcess, tiny_cpu_backends

# Tests never reach a model hub: a missing model must fail at once, not after network time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VllmProcess]]:
    """Both tiny vision models served by real ``vllm serve`` processes on free loopback ports.

    Started together (start-up is 40-60 s each on CPU), shared by every test of the session, and
    stopped by process group at the end even when tests fail.
    """
    if importlib.util.find_spec("vllm") is None:
        pytest.fail(
            "vLLM is not installed in this environment: build the CPU stack with 'make stack' "
            "(or deselect these tests with -m 'not vllm')"
        )
    logs = tmp_path_factory.mktemp("vllm-logs")
    processes = {
        backend.name: VllmProcess(backend, log_file=logs / f"{backend.name}.log")
        for backend in tiny_cpu_backends()
    }
    try:
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready(timeout=600)
        yield processes
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The committed tiny-model folder."""
    from converters.tiny.common import ARTIFACTS

    return ARTIFACTS
