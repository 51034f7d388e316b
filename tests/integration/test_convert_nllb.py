"""`babelcap convert nllb` wraps CTranslate2's converter and proves the result."""

from __future__ import annotations

import json

import pytest

from babelcap.converters.nllb import MANIFEST, convert_nllb
from babelcap.core.errors import ConfigurationError


def test_converts_copies_the_tokenizer_and_proves_it_translates(artifacts, tmp_path):
    output = tmp_path / "ct2"
    manifest = convert_nllb(str(artifacts / "nllb"), output)
    assert {"model.bin", "shared_vocabulary.json", "sentencepiece.bpe.model", MANIFEST} <= {
        p.name for p in output.iterdir()
    }
    assert manifest["probe"]["fra_Latn"] == "Un petit chien dort dans le parc."
    assert manifest["quantization"] == "int8"
    assert json.loads((output / MANIFEST).read_text(encoding="utf-8")) == manifest


def test_a_cached_hub_id_is_read_from_the_hugging_face_cache(artifacts, tmp_path, monkeypatch):
    from tests.hub_fixtures import commit_of, fill_cache

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    fill_cache(tmp_path / "hub", "babelcap-test/tiny-nllb", artifacts / "nllb")
    manifest = convert_nllb("babelcap-test/tiny-nllb", tmp_path / "ct2")
    assert manifest["source_model"] == "babelcap-test/tiny-nllb"
    assert manifest["revision"] == commit_of("babelcap-test/tiny-nllb")
    assert manifest["probe"]["fra_Latn"] == "Un petit chien dort dans le parc."


def test_refuses_a_non_empty_output_unless_forced(artifacts, tmp_path):
    (tmp_path / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not empty: pass --force"):
        convert_nllb(str(artifacts / "nllb"), tmp_path)
    convert_nllb(str(artifacts / "nllb"), tmp_path, force=True, quantization="float32")
    assert (tmp_path / "model.bin").exists()


@pytest.mark.parametrize(
    ("model", "quantization", "message"),
    [
        ("mllama", "int8", "not NLLB/M2M100"),
        ("nllb", "int4", "unknown quantization 'int4'"),
        ("no-such-model-folder", "int8", "neither a folder nor a reachable"),
    ],
)
def test_clear_errors(artifacts, tmp_path, model, quantization, message):
    source = artifacts / model if (artifacts / model).exists() else tmp_path / model
    with pytest.raises(ConfigurationError, match=message):
        convert_nllb(str(source), tmp_path / "out", quantization=quantization)
    assert not (tmp_path / "out").exists()
