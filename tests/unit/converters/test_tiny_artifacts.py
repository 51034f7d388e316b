"""The committed tiny stand-ins are what their builders declare, and unchanged since built."""

from __future__ import annotations

import json
import shutil

import pytest

from babelcap.converters.tiny import llava_next_video, mllama, nllb
from babelcap.converters.tiny.build import check_models


def _config(folder):
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def test_every_artifact_matches_its_build_record(artifacts):
    assert check_models(root=artifacts) == 0


def test_a_changed_file_is_reported_by_name(artifacts, tmp_path, capsys):
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts / "nllb", copy / "nllb")
    shutil.copytree(artifacts / "nllb-ct2", copy / "nllb-ct2")
    (copy / "nllb" / "config.json").write_text("{}", encoding="utf-8")
    assert check_models(["nllb"], root=copy) == 1
    assert "nllb: differs from BUILD.json in config.json" in capsys.readouterr().out


def test_mllama_has_the_real_models_token_layout(artifacts):
    from transformers import AutoProcessor

    folder = artifacts / "mllama"
    config = _config(folder)
    processor = AutoProcessor.from_pretrained(folder)
    image_id = processor.tokenizer.convert_tokens_to_ids(mllama.IMAGE_TOKEN)
    assert config["architectures"] == ["MllamaForConditionalGeneration"]
    # <|image|> is the last id and equals the text vocabulary size, as in Llama 3.2 Vision.
    assert image_id == config["text_config"]["vocab_size"] == config["image_token_index"]
    assert image_id == len(processor.tokenizer) - 1
    vision = config["vision_config"]
    assert vision["num_hidden_layers"] - 1 not in vision["intermediate_layers_indices"]
    assert "token_type_ids" not in processor.tokenizer("hello")
    # vLLM's CPU PagedAttention supports head sizes >= 32.
    text = config["text_config"]
    assert text["hidden_size"] // text["num_attention_heads"] >= 32
    assert processor.image_processor.size == {"height": mllama.TILE, "width": mllama.TILE}


def test_llava_next_video_has_what_vllm_needs(artifacts):
    from transformers import AutoProcessor

    folder = artifacts / "llava-next-video"
    config = _config(folder)
    processor = AutoProcessor.from_pretrained(folder)
    assert config["architectures"] == ["LlavaNextVideoForConditionalGeneration"]
    assert config["text_config"]["architectures"] == ["LlamaForCausalLM"]
    assert type(processor.tokenizer).__name__ == "LlamaTokenizerFast"
    assert processor.tokenizer.convert_tokens_to_ids("<video>") == config["video_token_index"]
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == config["image_token_index"]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]}],
        add_generation_prompt=True,
    )
    assert prompt == "<s>USER: <video>\nHi ASSISTANT:"
    tokens_per_frame = (
        config["vision_config"]["image_size"]
        // config["vision_config"]["patch_size"]
        // config["spatial_pool_stride"]
    ) ** 2
    assert tokens_per_frame == 16


def test_nllb_tokenizer_carries_all_flores200_codes(artifacts):
    from transformers import AutoTokenizer

    codes = nllb.flores200_codes()
    assert len(codes) == 202 and {"eng_Latn", "fra_Latn", "spa_Latn", "hin_Deva"} <= set(codes)
    tokenizer = AutoTokenizer.from_pretrained(artifacts / "nllb")
    ids = tokenizer.convert_tokens_to_ids(codes)
    assert tokenizer.unk_token_id not in ids
    assert len(set(ids)) == 202
    assert _config(artifacts / "nllb")["vocab_size"] == len(tokenizer)
    ct2_vocabulary = json.loads(
        (artifacts / "nllb-ct2" / "shared_vocabulary.json").read_text("utf-8")
    )
    assert set(codes) <= set(ct2_vocabulary)


def test_builders_declare_what_was_recorded(artifacts):
    for module, folder in [
        (mllama, "mllama"),
        (llava_next_video, "llava-next-video"),
        (nllb, "nllb"),
    ]:
        record = json.loads((artifacts / folder / "BUILD.json").read_text(encoding="utf-8"))
        assert record["seed"] == module.SEED
        assert record["architecture"] == _config(artifacts / folder)["architectures"][0]
        rate = record.get("held_out_exact_answer_rate", record.get("exact_translation_rate"))
        assert rate == 1.0, f"{folder} was committed before it learned its task"


@pytest.mark.parametrize("folder", ["mllama", "llava-next-video", "nllb", "nllb-ct2"])
def test_artifacts_stay_a_few_megabytes(artifacts, folder):
    size = sum(p.stat().st_size for p in (artifacts / folder).rglob("*") if p.is_file())
    assert size < 8 * 2**20
