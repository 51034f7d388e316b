"""LibreTranslate's real Python client, libretranslatepy (urllib, form-encoded bodies, the key
as api_key in the body, even on GET /languages), against real servers, unchanged: the
stand-alone translation app without a key, and the gateway with one."""

from __future__ import annotations

import json
import urllib.error

import httpx
import pytest
from libretranslatepy import LibreTranslateAPI

from tests.integration.test_translation_faults import KEY, SENTENCE, translation_server

FRENCH = "L'image est surtout rouge."
SPANISH = "La imagen es mayormente roja."


@pytest.fixture(scope="module")
def open_server(artifacts, tmp_path_factory):
    with translation_server(artifacts / "nllb-ct2", tmp_path_factory.mktemp("open")) as served:
        yield served[0]


@pytest.fixture(scope="module")
def keyed_server(artifacts, tmp_path_factory):
    logs = tmp_path_factory.mktemp("keyed")
    with translation_server(artifacts / "nllb-ct2", logs, api_key=KEY) as served:
        yield served[0]


@pytest.mark.parametrize("where", ["open_server", "keyed_server"])
def test_libretranslatepy_languages_translate_and_detect(where, request):
    base = request.getfixturevalue(where)
    client = LibreTranslateAPI(base, api_key=KEY if where == "keyed_server" else None)
    languages = {entry["code"]: entry for entry in client.languages()}
    assert len(languages) == 202
    assert languages["fr"]["name"] == "French" and "es" in languages["fr"]["targets"]
    assert {"ar", "zh-Hans", "zh-Hant", "pt", "ary_Arab"} <= set(languages)
    assert client.translate(SENTENCE, "en", "fr") == FRENCH
    assert client.translate(SENTENCE, "auto", "es") == SPANISH
    assert client.translate(SENTENCE, "eng_Latn", "spa_Latn") == SPANISH  # FLORES-200 too
    assert client.translate(SENTENCE, "en", "ar")  # ISO 639-1 ar is Modern Standard Arabic
    detected = client.detect("Bonjour, comment allez-vous aujourd'hui ?")
    assert detected[0]["language"] == "fr" and 50 < detected[0]["confidence"] <= 100
    assert len(detected) <= 3


def test_a_missing_key_is_401_and_a_wrong_one_403_in_libretranslates_shape(keyed_server):
    for key, status, words in ((None, 401, "Missing API key"), ("wrong", 403, "Invalid API key")):
        client = LibreTranslateAPI(keyed_server, key)
        for call in (client.languages, lambda c=client: c.translate(SENTENCE, "en", "fr")):
            with pytest.raises(urllib.error.HTTPError) as caught:
                call()
            assert caught.value.code == status
            assert words in json.loads(caught.value.read())["error"]


def test_form_multipart_and_query_keys_are_accepted_by_the_gateway(keyed_server):
    form = {"q": SENTENCE, "source": "en", "target": "fr", "api_key": KEY}
    multipart = httpx.post(
        f"{keyed_server}/translate", files={k: (None, v) for k, v in form.items()}
    )
    assert multipart.json() == {"translatedText": FRENCH}
    detect = httpx.post(f"{keyed_server}/detect", data={"q": "Hola, ¿cómo estás?", "api_key": KEY})
    assert detect.json()[0]["language"] == "es"
    settings = httpx.get(f"{keyed_server}/frontend/settings", params={"api_key": KEY})
    assert settings.status_code == 200 and settings.json()["charLimit"] > 0


def test_libretranslate_answers_in_its_own_shapes(open_server):
    many = httpx.post(
        f"{open_server}/translate",
        json={"q": [SENTENCE, "42"], "source": "auto", "target": "es", "alternatives": 2},
    ).json()
    assert many["translatedText"] == [SPANISH, "42"]
    assert [d["language"] for d in many["detectedLanguage"]] == ["en", "en"]
    assert many["alternatives"] == [[], []]
    missing = httpx.post(f"{open_server}/translate", data={"source": "en", "target": "fr"})
    assert missing.status_code == 400
    assert missing.json() == {"error": "Invalid request: missing q parameter"}
    unknown = httpx.post(f"{open_server}/translate", data={"q": "Hi", "target": "xx"})
    assert unknown.status_code == 400 and "unknown language code 'xx'" in unknown.json()["error"]
    settings = httpx.get(f"{open_server}/frontend/settings").json()
    assert settings["keyRequired"] is False and settings["language"]["source"]["code"] == "auto"
    assert settings["charLimit"] > 0 and settings["supportedFilesFormat"] == []
