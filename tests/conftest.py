"""Shared fixtures. The real `babelcap serve` (vLLM CPU build, tiny models) is in
tests/integration/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.s3_fixtures"]

# Tests never reach a model hub: a missing model must fail at once, not after network time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The committed tiny-model folder."""
    from babelcap.core.artifacts import STAND_INS

    return STAND_INS
