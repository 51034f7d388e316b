"""Model references resolve to folders through huggingface_hub's real cache code, offline."""

from __future__ import annotations

import json

import pytest

from babelcap.core.errors import ConfigurationError
from babelcap.server.hub import hub_cache_dir, hub_env, is_hub_id, resolve
from tests.hub_fixtures import TEST_IDS, commit_of, fill_cache, filled_hf_home

MLLAMA = TEST_IDS["mllama"]


@pytest.fixture
def hf_home(tmp_path, monkeypatch, artifacts):
    """A Hugging Face home whose hub cache holds the stand-ins under their test ids, offline."""
    return filled_hf_home(tmp_path / "hf", monkeypatch, artifacts)


def test_a_cached_hub_id_resolves_to_its_snapshot(hf_home, artifacts):
    resolved = resolve(MLLAMA)
    assert (
        resolved.path
        == hf_home / "hub" / "models--babelcap-test--tiny-mllama" / "snapshots" / commit_of(MLLAMA)
    )
    assert (resolved.repo_id, resolved.revision, resolved.is_local) == (
        MLLAMA,
        commit_of(MLLAMA),
        False,
    )
    config = json.loads((resolved.path / "config.json").read_text(encoding="utf-8"))
    assert config == json.loads((artifacts / "mllama" / "config.json").read_text(encoding="utf-8"))


def test_a_revision_may_be_pinned_by_commit_or_branch(hf_home):
    assert resolve(f"{MLLAMA}@{commit_of(MLLAMA)}").revision == commit_of(MLLAMA)
    assert resolve(f"{MLLAMA}@main").revision == commit_of(MLLAMA)
    with pytest.raises(ConfigurationError, match=r"v9.*not in the Hugging Face cache"):
        resolve(f"{MLLAMA}@v9")


def test_hf_hub_cache_wins_over_hf_home(hf_home, tmp_path, monkeypatch, artifacts):
    other = tmp_path / "elsewhere"
    fill_cache(other, "babelcap-test/only-here", artifacts / "nllb")
    monkeypatch.setenv("HF_HUB_CACHE", str(other))
    assert hub_cache_dir() == other
    assert resolve("babelcap-test/only-here").path.is_relative_to(other)
    with pytest.raises(ConfigurationError, match=str(other)):
        resolve(MLLAMA)  # only in HF_HOME's cache


def test_folders_are_used_as_they_are(hf_home, artifacts, monkeypatch):
    assert resolve(artifacts / "nllb").path == artifacts / "nllb"
    assert resolve(artifacts / "nllb").is_local
    monkeypatch.chdir(artifacts.parent)
    assert resolve("stand_ins/mllama").path == artifacts / "mllama"


def test_a_missing_model_names_the_pull_command_and_offline_mode(hf_home):
    with pytest.raises(ConfigurationError) as caught:
        resolve("meta-llama/Llama-3.2-11B-Vision-Instruct", profile="llama-vision-bf16")
    message = str(caught.value)
    assert "'meta-llama/Llama-3.2-11B-Vision-Instruct' is not in the Hugging Face cache" in message
    assert "babelcap models pull llama-vision-bf16" in message
    assert "HF_HUB_OFFLINE=1" in message and "so nothing is downloaded" in message


def test_online_the_message_does_not_mention_offline_mode(hf_home, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(ConfigurationError, match=r"babelcap models pull PROFILE`$"):
        resolve("facebook/nllb-200-distilled-600M")


def test_a_missing_folder_is_not_taken_for_a_hub_id(hf_home, tmp_path):
    with pytest.raises(ConfigurationError, match="neither an existing folder nor a hub id"):
        resolve(tmp_path / "no" / "such-model")


def test_an_interrupted_download_is_reported_as_partial(hf_home, artifacts, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_bytes((artifacts / "mllama" / "config.json").read_bytes())
    (partial / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}), encoding="utf-8"
    )
    fill_cache(hf_home / "hub", "babelcap-test/partial", partial)
    with pytest.raises(ConfigurationError, match=r"partly downloaded.*model-00001-of-00002"):
        resolve("babelcap-test/partial")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", True),
        ("RedHatAI/Llama-3.2-11B-Vision-Instruct-FP8-dynamic@main", True),
        ("facebook/nllb-200-distilled-600M@refs/pr/3", True),
        ("/models/Llama-3.2-11B-Vision-Instruct", False),
        ("./models/nllb", False),
        ("~/models/nllb", False),
        ("a/b/c", False),
        ("bad--org/name", False),
        ("nllb", False),
    ],
)
def test_what_counts_as_a_hub_id(ref, expected):
    assert is_hub_id(ref) is expected


def test_child_processes_read_the_same_cache_offline(hf_home):
    assert hub_env() == {"HF_HUB_CACHE": str(hf_home / "hub"), "HF_HUB_OFFLINE": "1"}
