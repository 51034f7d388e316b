"""Translation speed: CTranslate2 int8 vs transformers fp32, and sentence-batched vs whole-text.

Runs on a random-weight model with NLLB-200-distilled-600M's real dimensions (d_model 1024,
12+12 layers, 16 heads, FFN 4096, vocabulary 256,206: 615M parameters), built locally, so no
download is needed. Output lengths are forced (min = max) so every engine does the same work.

    python -m babelcap.benchmarks.translation [--threads 2] [--output out/bench-translation.json]

Cases:
1. greedy, batch 32 and batch 1: 25 source tokens, exactly 30 output tokens (code included);
2. a 5-sentence description into 3 languages: the original scripts' one whole-text call per
   language (3 calls, 150 output tokens each) vs babelcap's one batch of 15 sentences (30 each);
   and, on the trained tiny NLLB, how many of the 5 sentences each approach actually translates;
3. this CPU's ceiling: the raw int8 vs fp32 matrix-multiply speed (torch's int8 GEMM, oneDNN
   like CTranslate2's, against its fp32 GEMM, MKL) on the shapes of one decoding step at batch
   32. An int8 engine that only makes the GEMMs cheaper cannot beat fp32 by more than this,
   unless the fp32 side wastes time elsewhere.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from babelcap.benchmarks.environment import save_report

SOURCE_TOKENS, OUTPUT_TOKENS = 25, 30
LANGUAGES = ["fra_Latn", "spa_Latn", "hin_Deva"]


def _build_real_size(folder: Path, tiny_nllb: Path) -> None:
    """Random-weight M2M100 with NLLB-600M's dimensions, saved with the tiny tokenizer files."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    if (folder / "model.safetensors").exists():
        return
    torch.manual_seed(0)
    config = M2M100Config(  # type: ignore[no-untyped-call]
        vocab_size=256206, d_model=1024, encoder_layers=12, decoder_layers=12,
        encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096,
        decoder_ffn_dim=4096, max_position_embeddings=1024, scale_embedding=True,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
        tokenizer_class="NllbTokenizer",
    )  # fmt: skip
    config.architectures = ["M2M100ForConditionalGeneration"]
    model = M2M100ForConditionalGeneration(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for name in tiny_nllb.iterdir():
        if name.suffix != ".safetensors" and name.name not in ("config.json", "BUILD.json"):
            shutil.copy(name, folder / name.name)


def _timed(function: Callable[[], Any], repeat: int) -> float:
    """Median wall seconds of ``repeat`` runs after one warm-up."""
    function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _speed_cases(hf_dir: Path, ct2_dir: Path, threads: int, repeat: int) -> list[dict[str, Any]]:
    import ctranslate2
    import torch
    from transformers import M2M100ForConditionalGeneration

    torch.set_num_threads(threads)
    vocabulary = json.loads((ct2_dir / "shared_vocabulary.json").read_text(encoding="utf-8"))
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 250000, (32, SOURCE_TOKENS - 2), generator=generator)
    code = vocabulary.index("fra_Latn")
    eng = vocabulary.index("eng_Latn")
    source_ids = torch.cat([torch.full((32, 1), eng), ids, torch.full((32, 1), 2)], dim=1)
    hf = M2M100ForConditionalGeneration.from_pretrained(hf_dir).eval()
    translator = ctranslate2.Translator(
        str(ct2_dir), device="cpu", compute_type="int8", intra_threads=threads
    )
    rows = []
    for batch in (32, 1):
        chunk = source_ids[:batch]
        tokens = [[vocabulary[i] for i in row.tolist()] for row in chunk]

        def run_hf(chunk: Any = chunk) -> None:
            with torch.inference_mode():
                out = hf.generate(
                    input_ids=chunk, attention_mask=torch.ones_like(chunk),
                    forced_bos_token_id=code, num_beams=1, do_sample=False,
                    min_new_tokens=OUTPUT_TOKENS, max_new_tokens=OUTPUT_TOKENS,
                )  # fmt: skip
            assert out.shape[1] == OUTPUT_TOKENS + 1  # + the decoder start token

        def run_ct2(tokens: Any = tokens) -> None:
            out = translator.translate_batch(
                tokens, target_prefix=[["fra_Latn"]] * len(tokens), beam_size=1,
                min_decoding_length=OUTPUT_TOKENS, max_decoding_length=OUTPUT_TOKENS,
            )  # fmt: skip
            assert len(out[0].hypotheses[0]) == OUTPUT_TOKENS

        seconds_hf = _timed(run_hf, repeat)
        seconds_ct2 = _timed(run_ct2, repeat)
        rows.append({
            "case": f"greedy, batch {batch}", "sentences": batch,
            "transformers_fp32_s": round(seconds_hf, 3),
            "ctranslate2_int8_s": round(seconds_ct2, 3),
            "transformers_sentences_per_s": round(batch / seconds_hf, 3),
            "ctranslate2_sentences_per_s": round(batch / seconds_ct2, 3),
            "speedup": round(seconds_hf / seconds_ct2, 2),
        })  # fmt: skip
    return rows


# (in, out, uses per decoding step) of the decoder's matrix products at d_model 1024, FFN 4096:
# 12 layers x (self-attention q, k, v, out; cross-attention q, out; FFN in; FFN out), and the
# output projection onto the 256,206-token vocabulary. Cross-attention keys and values are
# computed once from the encoder output, not per step.
_STEP_GEMMS = [(1024, 1024, 12 * 6), (1024, 4096, 12), (4096, 1024, 12), (1024, 256206, 1)]


def _gemm_ceiling(threads: int, repeat: int, rows: int = 32) -> dict[str, Any]:
    """fp32 vs int8 GEMM seconds for one decoding step's matrix products at ``rows`` sentences."""
    import torch

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(2)
    seconds_fp32 = seconds_int8 = 0.0
    for k, n, uses in _STEP_GEMMS:
        a, b = torch.randn(rows, k, generator=generator), torch.randn(k, n, generator=generator)
        a8 = torch.randint(-127, 128, (rows, k), dtype=torch.int8, generator=generator)
        b8 = torch.randint(-127, 128, (k, n), dtype=torch.int8, generator=generator)
        seconds_fp32 += uses * _timed(functools.partial(torch.mm, a, b), 5 * repeat)
        seconds_int8 += uses * _timed(functools.partial(torch._int_mm, a8, b8), 5 * repeat)
    return {
        "rows": rows,
        "fp32_gemm_ms_per_step": round(1000 * seconds_fp32, 1),
        "int8_gemm_ms_per_step": round(1000 * seconds_int8, 1),
        "ratio": round(seconds_fp32 / seconds_int8, 2),
    }


def _whole_vs_sentences(ct2_dir: Path, threads: int, repeat: int) -> dict[str, Any]:
    import ctranslate2

    vocabulary = json.loads((ct2_dir / "shared_vocabulary.json").read_text(encoding="utf-8"))
    translator = ctranslate2.Translator(
        str(ct2_dir), device="cpu", compute_type="int8", intra_threads=threads
    )
    sentences = [
        ["eng_Latn", *vocabulary[5000 + 40 * i : 5000 + 40 * i + SOURCE_TOKENS - 2], "</s>"]
        for i in range(5)
    ]
    whole = ["eng_Latn"] + [t for s in sentences for t in s[1:-1]] + ["</s>"]
    whole_length = 1 + 5 * (OUTPUT_TOKENS - 1)

    def original() -> None:  # one call per language, the whole text at once
        for language in LANGUAGES:
            translator.translate_batch(
                [whole], target_prefix=[[language]], beam_size=1,
                min_decoding_length=whole_length, max_decoding_length=whole_length,
            )  # fmt: skip

    def babelcap() -> None:  # every sentence x every language in one batch
        translator.translate_batch(
            [s for _ in LANGUAGES for s in sentences],
            target_prefix=[[language] for language in LANGUAGES for _ in sentences],
            beam_size=1, min_decoding_length=OUTPUT_TOKENS, max_decoding_length=OUTPUT_TOKENS,
        )  # fmt: skip

    seconds_original = _timed(original, repeat)
    seconds_babelcap = _timed(babelcap, repeat)
    return {
        "whole_text_per_language_s": round(seconds_original, 3),
        "sentence_batched_s": round(seconds_babelcap, 3),
        "speedup": round(seconds_original / seconds_babelcap, 2),
        "output_tokens_each": 3 * whole_length,
    }


def _completeness(tiny_ct2: Path) -> dict[str, Any]:
    """On the trained tiny NLLB: sentences of a 5-sentence text that come back translated."""
    import asyncio

    import ctranslate2
    import sentencepiece

    from babelcap.converters.tiny.nllb import template_sentences
    from babelcap.server.translation import TranslationEngine, TranslationSettings

    rows = [r for r in template_sentences() if r["eng_Latn"].startswith("A ")][::37][:5]
    text = " ".join(r["eng_Latn"] for r in rows)
    pieces = sentencepiece.SentencePieceProcessor(
        model_file=str(tiny_ct2 / "sentencepiece.bpe.model")
    )
    translator = ctranslate2.Translator(str(tiny_ct2), compute_type="int8")
    result: dict[str, Any] = {}
    for language in ("fra_Latn", "spa_Latn"):
        whole = translator.translate_batch(
            [["eng_Latn", *pieces.encode(text, out_type=str), "</s>"]],
            target_prefix=[[language]], beam_size=1, max_decoding_length=300,
        )[0].hypotheses[0][1:]  # fmt: skip
        whole_text = pieces.decode(whole)

        async def sentence_batched(language: str = language) -> str:
            engine = TranslationEngine(TranslationSettings(model=tiny_ct2))
            try:
                return (await engine.translate([text], [language])).texts[language][0]
            finally:
                await engine.aclose()

        ours = asyncio.run(sentence_batched())
        result[language] = {
            "whole_text_sentences_correct": sum(r[language] in whole_text for r in rows),
            "sentence_batched_sentences_correct": sum(r[language] in ours for r in rows),
            "of": len(rows),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, save JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both engines")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (median)")
    parser.add_argument("--cache", default="out/bench-models", help="where the big model is built")
    parser.add_argument("--output", default="out/bench-translation.json", help="JSON report")
    args = parser.parse_args(argv)

    from babelcap.converters.ct2 import convert_transformers
    from babelcap.core.artifacts import STAND_INS as ARTIFACTS

    cache = Path(args.cache)
    hf_dir, ct2_dir = cache / "nllb-600m-random", cache / "nllb-600m-random-ct2-int8"
    started = time.perf_counter()
    _build_real_size(hf_dir, ARTIFACTS / "nllb")
    if not (ct2_dir / "model.bin").exists():
        convert_transformers(hf_dir, ct2_dir, quantization="int8", force=True)
    prepared = time.perf_counter() - started
    speed = _speed_cases(hf_dir, ct2_dir, args.threads, args.repeat)
    description = _whole_vs_sentences(ct2_dir, args.threads, args.repeat)
    completeness = _completeness(ARTIFACTS / "nllb-ct2")
    ceiling = _gemm_ceiling(args.threads, args.repeat)
    print(
        f"{'case':<18}{'HF fp32 s':>11}{'CT2 int8 s':>12}"
        f"{'HF sent/s':>11}{'CT2 sent/s':>12}{'x':>7}"
    )
    for row in speed:
        print(f"{row['case']:<18}{row['transformers_fp32_s']:>11.2f}{row['ctranslate2_int8_s']:>12.2f}"
              f"{row['transformers_sentences_per_s']:>11.2f}{row['ctranslate2_sentences_per_s']:>12.2f}"
              f"{row['speedup']:>7.2f}")  # fmt: skip
    print(f"this CPU's int8:fp32 GEMM ratio on one decoding step's shapes at batch 32: "
          f"{ceiling['ratio']:.2f}x ({ceiling['fp32_gemm_ms_per_step']:.0f} ms fp32, "
          f"{ceiling['int8_gemm_ms_per_step']:.0f} ms int8)")  # fmt: skip
    d = description
    print(f"5 sentences x 3 languages: whole text per language "
          f"{d['whole_text_per_language_s']:.2f} s, sentence-batched "
          f"{d['sentence_batched_s']:.2f} s ({d['speedup']:.2f}x)")  # fmt: skip
    for language, counts in completeness.items():
        whole, ours = (
            counts["whole_text_sentences_correct"],
            counts["sentence_batched_sentences_correct"],
        )
        print(f"tiny NLLB {language}: whole text keeps {whole}/{counts['of']} sentences, "
              f"sentence-batched {ours}/{counts['of']}")  # fmt: skip
    save_report(
        args.output, "translation",
        {**vars(args), "source_tokens": SOURCE_TOKENS, "output_tokens": OUTPUT_TOKENS,
         "languages": LANGUAGES, "model": "random weights, NLLB-200-distilled-600M size"},
        prepare_seconds=round(prepared, 1), engines=speed, gemm_ceiling=ceiling,
        five_sentences_three_languages=description, completeness_tiny_model=completeness,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
