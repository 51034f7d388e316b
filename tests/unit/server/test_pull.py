"""What `babelcap models pull` fetches, and what it says offline (downloads from a hub: see
tests/integration/test_models_pull.py)."""

from __future__ import annotations

import pytest

from babelcap.core.errors import ConfigurationError
from babelcap.server.hub import resolve
from babelcap.server.pull import pull, wanted_files
from tests.hub_fixtures import TEST_IDS, filled_hf_home


@pytest.fixture
def hf_home(tmp_path, monkeypatch, artifacts):
    """A Hugging Face home whose hub cache holds the stand-ins under their test ids, offline."""
    return filled_hf_home(tmp_path / "hf", monkeypatch, artifacts)


def test_pulls_fetch_safetensors_not_their_duplicates():
    files = [
        "config.json", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
        "pytorch_model.bin", "original/consolidated.pth", "original/params.json",
        "tokenizer.json", "chat_template.jinja", "README.md", ".gitattributes",
    ]  # fmt: skip
    assert wanted_files(files) == [
        "chat_template.jinja", "config.json", "model-00001-of-00002.safetensors",
        "model.safetensors.index.json", "tokenizer.json",
    ]  # fmt: skip
    # NLLB-200 ships PyTorch weights only: then they are the ones to fetch.
    nllb = ["config.json", "pytorch_model.bin", "sentencepiece.bpe.model", "tokenizer.json"]
    assert wanted_files(nllb) == sorted(nllb)


def test_offline_pull_reports_what_is_cached_and_names_what_is_not(hf_home, artifacts):
    results = pull([TEST_IDS["mllama"], TEST_IDS["nllb"], str(artifacts / "nllb-ct2")])
    assert [r.status for r in results] == ["present", "present", "local"]
    assert results[0].path == resolve(TEST_IDS["mllama"]).path
    with pytest.raises(ConfigurationError, match=r"not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        pull(["babelcap-test/never-pulled"])
