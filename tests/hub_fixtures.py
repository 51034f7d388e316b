"""A Hugging Face cache written with huggingface_hub's real layout, for tests that must not
reach a hub: ``models--org--name/{blobs/<hash>, snapshots/<commit>/<file> -> blob, refs/main}``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

#: The stand-ins under hub ids of their own.
TEST_IDS = {
    "mllama": "babelcap-test/tiny-mllama",
    "llava-next-video": "babelcap-test/tiny-llava-next-video",
    "nllb": "babelcap-test/tiny-nllb",
}


def commit_of(repo_id: str) -> str:
    """A fixed 40-hex commit id per repository, as the hub would give."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def fill_cache(hub_cache: Path, repo_id: str, source: Path, *, ref: str = "main") -> Path:
    """Put every file of ``source`` into ``hub_cache`` as the snapshot of ``repo_id`` at
    ``ref``; returns the snapshot folder."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    commit = commit_of(repo_id)
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        if not file.is_file():
            continue
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit, encoding="utf-8")
    return snapshot


def filled_hf_home(home: Path, monkeypatch: pytest.MonkeyPatch, stand_ins: Path) -> Path:
    """Make ``home`` the Hugging Face home (HF_HOME, offline) with every stand-in cached under
    :data:`TEST_IDS`; returns it."""
    for name, repo_id in TEST_IDS.items():
        fill_cache(home / "hub", repo_id, stand_ins / name)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home
