"""Prompt files are validated data, and every built-in one renders."""

from __future__ import annotations

import pytest

from babelcap.core.errors import ConfigurationError
from babelcap.prompts import BUILTIN, load_prompts

PART = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}


def test_every_builtin_prompt_renders_with_the_media_first():
    prompts = load_prompts()
    assert set(prompts) == {"description", "tags", "sentiment", "ad"}
    for prompt in prompts.values():
        for kind in ("image", "video"):
            messages = prompt.messages(kind, PART, {"frames": 8, "duration": 31.6})
            content = messages[-1]["content"]
            assert content[0] is PART  # media first: vLLM can share the media prefix
            text = content[1]["text"]
            assert text and "{" not in text
            if kind == "video":
                assert "8 frames" in text and "32-second" in text
    assert prompts["tags"].output == "tags"


def _write(tmp_path, body, name="mine.toml"):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_a_user_prompt_file_adds_a_task(tmp_path):
    path = _write(tmp_path, 'task = "logo"\nmax_tokens = 40\n[image]\ntext = "Which logos?"\n')
    prompts = load_prompts([tmp_path])
    assert prompts["logo"].max_tokens == 40
    assert prompts["logo"].variant("video") is None
    assert prompts["logo"].source == path


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('task = "x"\ncolour = 1\n[image]\ntext = "hi"\n', "colour"),
        ('task = "x"\n', "give an [image] and/or a [video] section"),
        ('task = "x"\n[image]\ntext = "<|image|>Describe."\n', "<|image|>"),
        ('task = "x"\n[video]\ntext = "USER: <video> what?"\n', "model-specific token"),
        ('task = "x"\n[image]\ntext = "{colour} things"\n', "unknown variable(s) colour"),
        ('task = "Bad Name"\n[image]\ntext = "hi"\n', "lower-case"),
        ('task = "x"\n[image]\ntext = "hi"\nmax_tokens = 1\n', "image.max_tokens"),
        ('task = "x"\n[image\n', "cannot read it"),
    ],
)
def test_bad_prompt_files_are_rejected_naming_the_file_and_field(tmp_path, body, complaint):
    path = _write(tmp_path, body)
    with pytest.raises(ConfigurationError) as caught:
        load_prompts([path])
    assert str(path) in str(caught.value)
    assert complaint in str(caught.value)


def test_two_user_files_for_one_task_clash(tmp_path):
    _write(tmp_path, 'task = "x"\n[image]\ntext = "a"\n', "a.toml")
    _write(tmp_path, 'task = "x"\n[image]\ntext = "b"\n', "b.toml")
    with pytest.raises(ConfigurationError, match="defined by both"):
        load_prompts([tmp_path])


def test_builtin_folder_holds_only_valid_files():
    assert sorted(p.stem for p in BUILTIN.glob("*.toml")) == [
        "ad",
        "description",
        "sentiment",
        "tags",
    ]
