"""The tiny NLLB, converted to CTranslate2 int8, translates its template language correctly."""

from __future__ import annotations

import ctranslate2
import sentencepiece as spm

from babelcap.converters.tiny import nllb


def test_every_template_sentence_translates_exactly_into_french_and_spanish(artifacts):
    assert nllb.ct2_exact_rate(artifacts / "nllb-ct2") == 1.0


def test_the_target_code_routes_the_language(artifacts):
    folder = artifacts / "nllb-ct2"
    translator = ctranslate2.Translator(str(folder), device="cpu", compute_type="int8")
    pieces = spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.bpe.model"))
    source = [
        "eng_Latn",
        *pieces.encode("A small dog is sleeping in the park.", out_type=str),
        "</s>",
    ]
    results = translator.translate_batch(
        [source, source], target_prefix=[["fra_Latn"], ["spa_Latn"]], beam_size=1
    )
    french, spanish = (pieces.decode(r.hypotheses[0][1:]) for r in results)
    assert french == "Un petit chien dort dans le parc."
    assert spanish == "Un perro pequeño duerme en el parque."
