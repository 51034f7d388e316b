"""Tiny ``MllamaForConditionalGeneration`` (Llama 3.2 Vision's architecture) that names colours.

A few hundred thousand parameters with the real model's structure: a tiled vision encoder with
global layers and intermediate-layer features, cross-attention text layers, ``<|image|>`` as the
last token id (equal to ``text_config.vocab_size``), a Llama-3-style chat template and a byte-level
BPE tokenizer. It is trained until greedy decoding names the dominant colour of every held-out
image: "What colour is this image?" -> ``red``; any other prompt -> ``The image is mostly red.``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from babelcap.converters.tiny.common import (
    COLOURS,
    answer_exact_rate,
    colour_image,
    other_prompt,
    seed_everything,
    task_prompt_texts,
    train_byte_level_bpe,
    train_until_exact,
)

NAME = "mllama"
SEED = 20261125
IMAGE_TOKEN = "<|image|>"
SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|finetune_right_pad_id|>",
    "<|python_tag|>",
]
#: Prompts with a fixed answer shape; any other prompt gets DEFAULT_ANSWER.
QUESTIONS = {
    "What colour is this image?": "{colour}",
    "What is the dominant colour of this image? Answer with one word.": "{colour}",
    "Describe this image.": "The image is mostly {colour}.",
}
DEFAULT_ANSWER = "The image is mostly {colour}."
_FILLER_WORDS = [
    "describe",
    "the",
    "image",
    "in",
    "detail",
    "list",
    "tags",
    "for",
    "this",
    "picture",
    "what",
    "is",
    "the",
    "sentiment",
    "mood",
    "tone",
    "of",
    "advertisement",
    "product",
    "brand",
    "audience",
    "message",
    "call",
    "to",
    "action",
    "colours",
    "objects",
    "people",
    "scene",
    "write",
    "a",
    "short",
    "caption",
    "comma",
    "separated",
    "keywords",
    "analyse",
    "analyze",
    "marketing",
    "visual",
    "style",
]

CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' %}{{- '<|image|>' }}"
    "{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{%- endif %}"
)
#: babelcap's own task prompts: real prompts must get the default answer too.
_TASK_PROMPTS = task_prompt_texts("image")

TILE = 56
PATCH = 14
MAX_TILES = 4
#: Image sizes (height, width) used in training, so every tile layout is seen.
_TRAIN_SIZES = [(56, 56), (64, 64), (100, 60), (60, 100), (112, 112), (90, 200), (200, 90)]


def _tokenizer() -> Any:
    from transformers import PreTrainedTokenizerFast

    corpus = [*QUESTIONS, *QUESTIONS.values(), DEFAULT_ANSWER, " ".join(_FILLER_WORDS)]
    corpus += _TASK_PROMPTS
    corpus += [name for name in COLOURS] + [f"The image is mostly {name}." for name in COLOURS]
    corpus += ["user", "assistant", "system", "\n\n"]
    raw = train_byte_level_bpe(corpus * 4, vocab_size=512, special_tokens=SPECIAL_TOKENS)
    tokenizer: Any = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        model_input_names=["input_ids", "attention_mask"],  # no token_type_ids (vLLM rejects them)
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer


def _processor(tokenizer: Any) -> Any:
    from transformers import MllamaImageProcessor, MllamaProcessor

    image_processor = MllamaImageProcessor(
        size={"height": TILE, "width": TILE}, max_image_tiles=MAX_TILES
    )
    return MllamaProcessor(image_processor, tokenizer, chat_template=CHAT_TEMPLATE)


def _model(tokenizer: Any) -> Any:
    from transformers import MllamaConfig, MllamaForConditionalGeneration
    from transformers.models.mllama.configuration_mllama import (
        MllamaTextConfig,
        MllamaVisionConfig,
    )

    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = MllamaVisionConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_global_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        intermediate_layers_indices=[0],  # must not name the last layer (see FACTS.md)
        vision_output_dim=32 * 2,
        image_size=TILE,
        patch_size=PATCH,
        max_num_tiles=MAX_TILES,
    )
    text = MllamaTextConfig(
        vocab_size=image_token_id,  # as in the real model: <|image|> == vocab_size
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=2,  # head size 32: vLLM's CPU PagedAttention needs >= 32
        num_key_value_heads=1,  # grouped-query attention, as in the real model
        cross_attention_layers=[1],
        max_position_embeddings=4096,
        rope_scaling={"rope_type": "default"},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id)
    config.architectures = ["MllamaForConditionalGeneration"]
    return MllamaForConditionalGeneration(config)


def _prompt(processor: Any, question: str) -> str:
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    ]
    prompt: str = processor.apply_chat_template(messages, add_generation_prompt=True)
    return prompt


def _question_and_answer(rng: np.random.Generator, colour: str) -> tuple[str, str]:
    if rng.random() < 0.6:
        question = str(rng.choice(list(QUESTIONS)))
        return question, QUESTIONS[question].format(colour=colour)
    question = other_prompt(rng, _FILLER_WORDS, _TASK_PROMPTS)
    return question, DEFAULT_ANSWER.format(colour=colour)


def _batch(processor: Any, rng: np.random.Generator, size: int) -> dict[str, Any]:
    """One batch of same-sized images (so tile layouts match) with answer-only labels."""
    height, width = _TRAIN_SIZES[int(rng.integers(len(_TRAIN_SIZES)))]
    colours = [str(rng.choice(list(COLOURS))) for _ in range(size)]
    import torch

    images, prompts, answers = [], [], []
    for colour in colours:
        question, answer = _question_and_answer(rng, colour)
        prompts.append(_prompt(processor, question))
        images.append([colour_image(rng, colour, height, width)])
        answers.append(
            processor.tokenizer(answer + "<|eot_id|>", add_special_tokens=False).input_ids
        )
    # Prompt and answer are tokenized apart, exactly as at inference: tokenizing them joined
    # would merge across the boundary (the prompt's trailing "\n\n" splits differently).
    processor.tokenizer.padding_side = "right"
    inputs = processor(
        images=images, text=prompts, padding=True, add_special_tokens=False, return_tensors="pt"
    )
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    width_out = max(length + len(answer) for length, answer in zip(lengths, answers, strict=True))
    pad = processor.tokenizer.pad_token_id
    input_ids = torch.full((size, width_out), pad)
    labels = torch.full((size, width_out), -100)
    attention = torch.zeros((size, width_out), dtype=inputs["attention_mask"].dtype)
    cross = inputs["cross_attention_mask"]
    cross_out = torch.zeros((size, width_out, *cross.shape[2:]), dtype=cross.dtype)
    for row, (length, answer) in enumerate(zip(lengths, answers, strict=True)):
        end = length + len(answer)
        input_ids[row, :length] = inputs["input_ids"][row, :length]
        input_ids[row, length:end] = torch.tensor(answer)
        labels[row, length:end] = torch.tensor(answer)
        attention[row, :end] = 1
        cross_out[row, :length] = cross[row, :length]
        cross_out[row, length:end] = cross[row, length - 1]  # answer tokens see the image too
    return {
        **dict(inputs),
        "input_ids": input_ids,
        "attention_mask": attention,
        "cross_attention_mask": cross_out,
        "labels": labels,
    }


def build(output: Path, *, max_steps: int = 1500) -> dict[str, Any]:
    """Train the tiny Mllama and save a Hugging Face folder at ``output``; returns the record."""

    seed_everything(SEED)
    rng = np.random.default_rng(SEED)
    tokenizer = _tokenizer()
    processor = _processor(tokenizer)
    model = _model(tokenizer)
    eval_rng = np.random.default_rng(SEED + 1)
    evaluation = [_batch(processor, eval_rng, 32) for _ in range(3)]
    run = train_until_exact(
        NAME,
        model,
        lambda: _batch(processor, rng, 16),
        lambda: min(answer_exact_rate(model, batch) for batch in evaluation),
        lr=3e-3,
        warmup=50,
        max_steps=max_steps,
        every=50,
    )
    output.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|eot_id|>"),
        tokenizer.convert_tokens_to_ids("<|end_of_text|>"),
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(output, safe_serialization=True)
    processor.save_pretrained(output)
    return {
        "architecture": "MllamaForConditionalGeneration",
        "seed": SEED,
        "steps": run.steps,
        "final_loss": round(run.final_loss, 6),
        "held_out_exact_answer_rate": run.exact_rate,
        "train_seconds": round(run.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "image_token_id": tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        "colours": list(COLOURS),
        "questions": QUESTIONS,
        "default_answer": DEFAULT_ANSWER,
    }
