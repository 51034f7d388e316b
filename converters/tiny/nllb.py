"""Tiny NLLB-200 (M2M100 architecture) that translates a small template language EN -> FR, ES.

The tokenizer is the real ``NllbTokenizer`` over a sentencepiece BPE model trained here, carrying
every one of the 202 FLORES-200 language codes, so language routing works exactly as with the real
NLLB-200: the source is ``[src_lang] pieces </s>`` and the target is forced to start with the
target code. The model is trained until greedy decoding reproduces every template sentence's
French and Spanish translation, then converted to CTranslate2 int8 and checked again there.
"""

from __future__ import annotations

import io
import itertools
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from babelcap.converters.ct2 import convert_transformers
from babelcap.converters.tiny.common import seed_everything, train_until_exact

NAME = "nllb"
SEED = 20261127
TARGETS = ("fra_Latn", "spa_Latn")

# Every noun is masculine in both languages, so the adjective tables need no agreement rules.
_DETERMINERS = {"A": ("Un", "Un"), "The": ("Le", "El")}
_ADJECTIVES = {
    "small": ("petit", "pequeño"),
    "big": ("grand", "grande"),
    "old": ("vieux", "viejo"),
    "young": ("jeune", "joven"),
}
_NOUNS = {"dog": ("chien", "perro"), "cat": ("chat", "gato"), "wolf": ("loup", "lobo"),
          "horse": ("cheval", "caballo")}  # fmt: skip
_VERBS = {"sleeping": ("dort", "duerme"), "eating": ("mange", "come"),
          "playing": ("joue", "juega"), "running": ("court", "corre")}  # fmt: skip
_PLACES = {
    "park": ("dans le parc", "en el parque"),
    "garden": ("dans le jardin", "en el jardín"),
    "kitchen": ("dans la cuisine", "en la cocina"),
    "forest": ("dans la forêt", "en el bosque"),
}


# Colour names: (French, Spanish) as a bare word, and (French, Spanish) agreeing with the
# feminine "l'image" / "la imagen".
_COLOUR_WORDS = {
    "red": ("rouge", "rojo", "rouge", "roja"),
    "green": ("vert", "verde", "verte", "verde"),
    "blue": ("bleu", "azul", "bleue", "azul"),
    "yellow": ("jaune", "amarillo", "jaune", "amarilla"),
    "orange": ("orange", "naranja", "orange", "naranja"),
    "purple": ("violet", "morado", "violette", "morada"),
    "white": ("blanc", "blanco", "blanche", "blanca"),
    "black": ("noir", "negro", "noire", "negra"),
}


def caption_sentences(seed: int = 7, lists: int = 240) -> list[dict[str, str]]:
    """What the tiny vision stand-ins answer, with translations, so a demo's captions translate.

    ``The image is mostly red.`` -> ``L'image est surtout rouge.`` / ``La imagen es mayormente
    roja.``; ``The video shows red, green, blue.`` -> ``La vidéo montre : rouge, vert, bleu.`` /
    ``El vídeo muestra: rojo, verde, azul.``; a bare list ``red, green`` -> ``rouge, vert``.
    """
    rows = []
    for name, (fr, es, fr_fem, es_fem) in _COLOUR_WORDS.items():
        rows.append({"eng_Latn": f"The image is mostly {name}.",
                     "fra_Latn": f"L'image est surtout {fr_fem}.",
                     "spa_Latn": f"La imagen es mayormente {es_fem}."})  # fmt: skip
        rows.append({"eng_Latn": name, "fra_Latn": fr, "spa_Latn": es})
    rng = np.random.default_rng(seed)
    names = list(_COLOUR_WORDS)
    seen: set[str] = set()
    while len(seen) < lists:
        chosen = [str(c) for c in rng.choice(names, size=int(rng.integers(2, 5)), replace=False)]
        english = ", ".join(chosen)
        if english in seen:
            continue
        seen.add(english)
        french = ", ".join(_COLOUR_WORDS[c][0] for c in chosen)
        spanish = ", ".join(_COLOUR_WORDS[c][1] for c in chosen)
        rows.append({"eng_Latn": english, "fra_Latn": french, "spa_Latn": spanish})
        rows.append({"eng_Latn": f"The video shows {english}.",
                     "fra_Latn": f"La vidéo montre : {french}.",
                     "spa_Latn": f"El vídeo muestra: {spanish}."})  # fmt: skip
    return rows


def template_sentences() -> list[dict[str, str]]:
    """Every sentence of the template language with its translations, keyed by FLORES-200 code.

    ``A small dog is sleeping in the park.`` -> ``Un petit chien dort dans le parc.`` /
    ``Un perro pequeño duerme en el parque.``; plus the tiny vision models' captions
    (:func:`caption_sentences`).
    """
    sentences = caption_sentences()
    for det, adj, noun, verb, place in itertools.product(
        _DETERMINERS, _ADJECTIVES, _NOUNS, _VERBS, _PLACES
    ):
        (fr_det, es_det), (fr_adj, es_adj) = _DETERMINERS[det], _ADJECTIVES[adj]
        (fr_noun, es_noun), (fr_verb, es_verb) = _NOUNS[noun], _VERBS[verb]
        fr_place, es_place = _PLACES[place]
        sentences.append(
            {
                "eng_Latn": f"{det} {adj} {noun} is {verb} in the {place}.",
                "fra_Latn": f"{fr_det} {fr_adj} {fr_noun} {fr_verb} {fr_place}.",
                "spa_Latn": f"{es_det} {es_noun} {es_adj} {es_verb} {es_place}.",
            }
        )
    return sentences


def flores200_codes() -> list[str]:
    """The 202 FLORES-200 language codes, in NLLB-200's own order."""
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    return list(FAIRSEQ_LANGUAGE_CODES)


def _sentencepiece(folder: Path) -> Path:
    import sentencepiece as spm

    lines = [text for row in template_sentences() for text in row.values()]
    # Written through model_writer, not model_prefix: the file then records no temporary path,
    # so two builds give identical bytes.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=160,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    path = folder / "sentencepiece.bpe.model"
    path.write_bytes(model.getvalue())
    return path


def _tokenizer(spm_file: Path) -> Any:
    from transformers import NllbTokenizer

    return NllbTokenizer(
        vocab_file=str(spm_file),
        src_lang="eng_Latn",
        tgt_lang="fra_Latn",
        additional_special_tokens=flores200_codes(),  # explicit: transformers 5 drops them
        legacy_behaviour=False,
    )


def _model(tokenizer: Any) -> Any:
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=256,
        decoder_ffn_dim=256,
        max_position_embeddings=1024,
        scale_embedding=True,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        tokenizer_class="NllbTokenizer",
    )
    config.architectures = ["M2M100ForConditionalGeneration"]
    return M2M100ForConditionalGeneration(config)


def _encode(tokenizer: Any, lang: str, text: str) -> list[int]:
    """``[lang] pieces </s>``: NLLB's layout for sources and (forced-prefix) targets alike."""
    pieces: list[int] = tokenizer(text, add_special_tokens=False).input_ids
    return [tokenizer.convert_tokens_to_ids(lang), *pieces, tokenizer.eos_token_id]


def _pairs(tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    return [
        (_encode(tokenizer, "eng_Latn", row["eng_Latn"]), _encode(tokenizer, lang, row[lang]))
        for row in template_sentences()
        for lang in TARGETS
    ]


def _tensors(tokenizer: Any, pairs: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
    import torch

    pad = tokenizer.pad_token_id
    width_in = max(len(source) for source, _ in pairs)
    width_out = max(len(target) for _, target in pairs)
    input_ids = torch.full((len(pairs), width_in), pad)
    labels = torch.full((len(pairs), width_out), -100)
    for row, (source, target) in enumerate(pairs):
        input_ids[row, : len(source)] = torch.tensor(source)
        labels[row, : len(target)] = torch.tensor(target)
    return {"input_ids": input_ids, "attention_mask": input_ids != pad, "labels": labels}


def _exact_rate(model: Any, batch: dict[str, Any]) -> float:
    import torch

    with torch.no_grad():
        logits = model(**batch).logits
    target = batch["labels"]
    # The first label (the language code) is forced at inference time, so it is not scored.
    predicted, target = logits.argmax(-1)[:, 1:], target[:, 1:]
    return float(((predicted == target) | (target == -100)).all(dim=1).float().mean())


def ct2_exact_rate(model_dir: Path) -> float:
    """Share of template sentences the CTranslate2 model at ``model_dir`` translates exactly."""
    import ctranslate2
    import sentencepiece as spm

    translator = ctranslate2.Translator(str(model_dir), device="cpu", compute_type="int8")
    processor = spm.SentencePieceProcessor(model_file=str(model_dir / "sentencepiece.bpe.model"))
    rows = template_sentences()
    sources = [
        ["eng_Latn", *processor.encode(row["eng_Latn"], out_type=str), "</s>"]
        for row in rows
        for _ in TARGETS
    ]
    prefixes = [[lang] for _ in rows for lang in TARGETS]
    results = translator.translate_batch(
        sources, target_prefix=prefixes, beam_size=1, max_decoding_length=64
    )
    expected = [row[lang] for row in rows for lang in TARGETS]
    got = [processor.decode(result.hypotheses[0][1:]) for result in results]
    exact: int = sum(a == b for a, b in zip(got, expected, strict=True))
    return exact / len(expected)


def build(output: Path, *, ct2_output: Path | None = None, max_steps: int = 2500) -> dict[str, Any]:
    """Train the tiny NLLB; save it at ``output``, its CTranslate2 int8 form at ``ct2_output``."""
    import ctranslate2

    seed_everything(SEED)
    rng = np.random.default_rng(SEED)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = _tokenizer(_sentencepiece(Path(scratch)))
        tokenizer.save_pretrained(output)
    tokenizer = _tokenizer(output / "sentencepiece.bpe.model")
    model = _model(tokenizer)
    pairs = _pairs(tokenizer)
    everything = _tensors(tokenizer, pairs)
    run = train_until_exact(
        NAME,
        model,
        lambda: _tensors(tokenizer, [pairs[i] for i in rng.choice(len(pairs), 64, replace=False)]),
        lambda: _exact_rate(model, everything),
        lr=3e-3,
        warmup=50,
        max_steps=max_steps,
        every=100,
    )
    model.generation_config.decoder_start_token_id = tokenizer.eos_token_id
    model.generation_config.max_length = 200
    model.save_pretrained(output, safe_serialization=True)
    record: dict[str, Any] = {
        "architecture": "M2M100ForConditionalGeneration",
        "seed": SEED,
        "steps": run.steps,
        "final_loss": round(run.final_loss, 6),
        "exact_translation_rate": run.exact_rate,
        "train_seconds": round(run.seconds, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary_size": len(tokenizer),
        "language_codes": len(flores200_codes()),
        "targets": list(TARGETS),
        "template_sentences": len(template_sentences()),
    }
    if ct2_output is not None:
        convert_transformers(output, ct2_output, copy_files=["sentencepiece.bpe.model"], force=True)
        record["ct2_int8_exact_translation_rate"] = ct2_exact_rate(ct2_output)
        record["ctranslate2_version"] = ctranslate2.__version__
    return record
