"""The translation HTTP API, served for real by `babelcap translation-server`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from babelcap.converters.tiny.nllb import template_sentences
from babelcap.server.process import free_port

ROW = template_sentences()[-1]
BODY_LIMIT = 20_000


@pytest.fixture(scope="module")
def server(artifacts, tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("translation") / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "babelcap", "translation-server", "--model",
         str(artifacts / "nllb-ct2"), "--port", str(port), "--max-body-bytes", str(BODY_LIMIT)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, "translation-server exited"
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_v1_translations_keeps_order_per_language_and_reports_usage(server):
    texts = [ROW["eng_Latn"], "", "The image is mostly red."]
    response = httpx.post(
        f"{server}/v1/translations",
        json={"text": texts, "target_languages": ["fra_Latn", "es"]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["source_language"] == "eng_Latn"
    by_lang = {t["target_language"]: t["texts"] for t in body["translations"]}
    assert by_lang["fra_Latn"] == [ROW["fra_Latn"], "", "L'image est surtout rouge."]
    assert by_lang["spa_Latn"] == [ROW["spa_Latn"], "", "La imagen es mayormente roja."]
    assert body["usage"]["sentences"] == 4
    assert body["usage"]["output_tokens"] > 0 and body["timing"]["seconds"] > 0


def test_libretranslate_shapes_for_a_string_and_a_list(server):
    one = httpx.post(
        f"{server}/translate",
        json={"q": ROW["eng_Latn"], "source": "en", "target": "fr", "format": "text"},
    )
    assert one.status_code == 200
    assert one.json() == {"translatedText": ROW["fra_Latn"]}
    many = httpx.post(
        f"{server}/translate", json={"q": [ROW["eng_Latn"], "42"], "source": "auto", "target": "es"}
    )
    assert many.json()["translatedText"] == [ROW["spa_Latn"], "42"]
    # As LibreTranslate does: for a list of texts, one detection per text.
    assert [d["language"] for d in many.json()["detectedLanguage"]] == ["en", "en"]


def test_languages_lists_every_language_by_iso_639_1_code_where_one_exists(server):
    languages = httpx.get(f"{server}/languages").json()
    codes = {entry["code"] for entry in languages}
    assert len(codes) == 202 and {"fr", "hi", "ar", "zh-Hans", "ary_Arab"} <= codes
    french = next(entry for entry in languages if entry["code"] == "fr")
    assert (
        french["name"] == "French" and "es" in french["targets"] and "fr" not in french["targets"]
    )


def test_bad_codes_are_400_with_suggestions_in_both_shapes(server):
    response = httpx.post(
        f"{server}/v1/translations", json={"text": "Hi.", "target_languages": ["fra_latn"]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_language" and "fra_Latn" in error["message"]
    libre = httpx.post(f"{server}/translate", json={"q": "Hi.", "source": "en", "target": "xx"})
    assert libre.status_code == 400 and "unknown language code 'xx'" in libre.json()["error"]


def test_bad_bodies_are_400_and_big_ones_413(server):
    missing = httpx.post(f"{server}/v1/translations", json={"text": "Hi."})
    assert missing.status_code == 400
    assert "target_languages" in missing.json()["error"]["message"]
    big = httpx.post(
        f"{server}/v1/translations",
        json={"text": "x" * (BODY_LIMIT + 1), "target_languages": ["fra_Latn"]},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"


def test_cli_translates_through_the_server(server):
    result = subprocess.run(
        [sys.executable, "-m", "babelcap", "translate", "-", "--to", "fr,es", "--server",
         server, "--json"],
        input=ROW["eng_Latn"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '{"fra_Latn": "' + ROW["fra_Latn"] + '", "spa_Latn": "' + ROW["spa_Latn"] + '"}'
    )


def test_cli_reports_a_bad_code_with_the_servers_suggestions(server):
    result = subprocess.run(
        [sys.executable, "-m", "babelcap", "translate", "Hello.", "--to", "fra_Latm",
         "--server", server],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "answered 400" in result.stderr and "fra_Latn" in result.stderr
    assert "Traceback" not in result.stderr
