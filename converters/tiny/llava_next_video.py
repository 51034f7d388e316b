"""Tiny ``LlavaNextVideoForConditionalGeneration`` that names the colours of video frames in order.

The real model's structure at toy size: a CLIP vision tower (64 px, patch 8), average spatial
pooling with stride 2 (16 tokens a frame), a Llama text model (``text_config.architectures`` set
to ``LlamaForCausalLM``, which vLLM requires), a Llama tokenizer class with ``<image>`` and
``<video>`` tokens and a chat template that emits ``<video>``. It is trained on 2 to 4 solid
frames of distinct colours until greedy decoding lists the frames' colours in order:
"What colours appear in this video, in order?" -> ``red, green, blue``; any other prompt ->
``The video shows red, green, blue.``. A test can therefore prove which frames reached the model,
and in which order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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

NAME = "llava-next-video"
SEED = 20261126
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>"]
QUESTIONS = {
    "What colours appear in this video, in order?": "{colours}",
    "Name the colour of each frame in order.": "{colours}",
}
DEFAULT_ANSWER = "The video shows {colours}."
_FILLER_WORDS = [
    "describe",
    "the",
    "video",
    "in",
    "detail",
    "list",
    "tags",
    "for",
    "this",
    "clip",
    "what",
    "is",
    "the",
    "sentiment",
    "mood",
    "tone",
    "of",
    "commercial",
    "advertisement",
    "product",
    "brand",
    "audience",
    "message",
    "call",
    "to",
    "action",
    "scene",
    "frames",
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
    "{%- if message['role'] != 'system' %}{{- message['role'].upper() + ': ' }}{%- endif %}"
    "{%- if message['content'] is string %}{{- message['content'] + ' ' }}"
    "{%- else %}"
    "{%- for part in message['content'] %}{%- if part['type'] == 'image' %}{{- '<image>\n' }}"
    "{%- elif part['type'] == 'video' %}{{- '<video>\n' }}{%- endif %}{%- endfor %}"
    "{%- for part in message['content'] %}{%- if part['type'] == 'text' %}"
    "{{- part['text'] + ' ' }}{%- endif %}{%- endfor %}"
    "{%- endif %}"
    "{%- if message['role'] == 'assistant' %}{{- eos_token }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- 'ASSISTANT:' }}{%- endif %}"
)
#: babelcap's own task prompts: real prompts must get the default answer too.
_TASK_PROMPTS = task_prompt_texts("video")

SIZE = 64
PATCH = 8
MIN_FRAMES, MAX_FRAMES = 2, 4


def _tokenizer() -> Any:
    from transformers import LlamaTokenizerFast

    colours = list(COLOURS)
    corpus = [*QUESTIONS, DEFAULT_ANSWER, " ".join(_FILLER_WORDS), "USER: ASSISTANT: SYSTEM:"]
    corpus += _TASK_PROMPTS
    corpus += [", ".join(colours), " ".join(colours), "The video shows " + ", ".join(colours)]
    raw = train_byte_level_bpe(corpus * 4, vocab_size=480, special_tokens=SPECIAL_TOKENS)
    tokenizer = LlamaTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        add_bos_token=True,
        add_eos_token=False,
        chat_template=CHAT_TEMPLATE,
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    return tokenizer


def _processor(tokenizer: Any) -> Any:
    from transformers import LlavaNextImageProcessor, LlavaNextVideoProcessor
    from transformers.models.llava_next_video.video_processing_llava_next_video import (
        LlavaNextVideoVideoProcessor,
    )

    square = {"height": SIZE, "width": SIZE}
    return LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(
            size={"shortest_edge": SIZE}, crop_size=square
        ),
        image_processor=LlavaNextImageProcessor(
            size={"shortest_edge": SIZE},
            crop_size=square,
            image_grid_pinpoints=[[SIZE, SIZE], [SIZE, 2 * SIZE], [2 * SIZE, SIZE]],
        ),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


def _model(tokenizer: Any) -> Any:
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
    )

    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text.architectures = ["LlamaForCausalLM"]  # vLLM resolves the text model from this
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SIZE,
        patch_size=PATCH,
        projection_dim=32,
    )
    config = LlavaNextVideoConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=[[SIZE, SIZE], [SIZE, 2 * SIZE], [2 * SIZE, SIZE]],
        spatial_pool_mode="average",
        spatial_pool_stride=2,
        image_seq_length=(SIZE // PATCH) ** 2,
        video_seq_length=(SIZE // PATCH // 2) ** 2 * MAX_FRAMES,
    )
    config.architectures = ["LlavaNextVideoForConditionalGeneration"]
    return LlavaNextVideoForConditionalGeneration(config)


def _prompt(processor: Any, question: str) -> str:
    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}
    ]
    prompt: str = processor.apply_chat_template(messages, add_generation_prompt=True)
    return prompt


def _question_and_answer(rng: np.random.Generator, colours: list[str]) -> tuple[str, str]:
    listed = ", ".join(colours)
    if rng.random() < 0.6:
        question = str(rng.choice(list(QUESTIONS)))
        return question, QUESTIONS[question].format(colours=listed)
    question = other_prompt(rng, _FILLER_WORDS, _TASK_PROMPTS)
    return question, DEFAULT_ANSWER.format(colours=listed)


def _batch(processor: Any, rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Videos with the same frame count (so they stack) and answer-only labels."""
    frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    videos, texts, prompt_lengths = [], [], []
    for _ in range(size):
        colours = [str(c) for c in rng.choice(list(COLOURS), size=frames, replace=False)]
        height, width = (SIZE, SIZE) if rng.random() < 0.5 else (int(rng.integers(48, 120)),) * 2
        videos.append(
            np.stack([colour_image(rng, c, height, width, box_fraction=4) for c in colours])
        )
        question, answer = _question_and_answer(rng, colours)
        prompt = _prompt(processor, question)
        texts.append(prompt + " " + answer + "</s>")
        prompt_lengths.append(len(processor.tokenizer(prompt, add_special_tokens=False).input_ids))
    # All videos of one batch must share a size for the processor to stack them.
    videos = [v if v.shape[1] == SIZE else _resize(v) for v in videos]
    inputs = processor(
        videos=videos, text=texts, padding=True, add_special_tokens=False, return_tensors="pt"
    )
    labels = inputs["input_ids"].clone()
    labels[inputs["attention_mask"] == 0] = -100
    tokens_per_frame = (SIZE // PATCH // 2) ** 2
    left_padded = processor.tokenizer.padding_side == "left"  # Llama tokenizers pad on the left
    for row, length in enumerate(prompt_lengths):
        start = int((inputs["attention_mask"][row] == 0).sum()) if left_padded else 0
        # The prompt's single <video> token became tokens_per_frame * frames tokens.
        labels[row, : start + length - 1 + tokens_per_frame * frames] = -100
    inputs["labels"] = labels
    return dict(inputs)


def _resize(video: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.fromarray(frame).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
            for frame in video
        ]
    )


def build(output: Path, *, max_steps: int = 4000) -> dict[str, Any]:
    """Train the tiny LLaVA-NeXT-Video and save a Hugging Face folder; returns the record."""

    seed_everything(SEED)
    rng = np.random.default_rng(SEED)
    tokenizer = _tokenizer()
    processor = _processor(tokenizer)
    model = _model(tokenizer)
    eval_rng = np.random.default_rng(SEED + 1)
    evaluation = [_batch(processor, eval_rng, 24) for _ in range(4)]
    run = train_until_exact(
        NAME,
        model,
        lambda: _batch(processor, rng, 16),
        lambda: min(answer_exact_rate(model, batch) for batch in evaluation),
        lr=2e-3,
        warmup=200,
        max_steps=max_steps,
        every=100,
    )
    output.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(output, safe_serialization=True)
    processor.save_pretrained(output)
    return {
        "architecture": "LlavaNextVideoForConditionalGeneration",
        "seed": SEED,
        "steps": run.steps,
        "final_loss": round(run.final_loss, 6),
        "held_out_exact_answer_rate": run.exact_rate,
        "train_seconds": round(run.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_frame": (SIZE // PATCH // 2) ** 2,
        "frames_trained": [MIN_FRAMES, MAX_FRAMES],
        "colours": list(COLOURS),
        "questions": QUESTIONS,
        "default_answer": DEFAULT_ANSWER,
    }
