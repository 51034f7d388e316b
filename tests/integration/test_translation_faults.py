"""The translation API under faults and abuse, over real HTTP: per-request limits, a client
that leaves, over-long and untranslatable text, the event loop kept free, and what
/openapi.json promises. Servers: the stand-alone app, and the gateway (translation only, API
key) under uvicorn in a child process, on the tiny NLLB."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from babelcap.server.process import free_port
from babelcap.server.translation import TranslationEngine, TranslationSettings
from babelcap.server.translation.api import create_app
from babelcap.server.translation.limits import TranslationLimits

KEY = "libre-key-42"
SENTENCE = "The image is mostly red."
ROUTES = ("/v1/translations", "/translate", "/detect", "/languages", "/frontend/settings")

_SERVE = """
import json, sys, uvicorn
from babelcap.server.translation import TranslationEngine, TranslationSettings
from babelcap.server.translation.api import create_app
from babelcap.server.translation.limits import TranslationLimits
config = json.loads(sys.argv[1])
engine = TranslationEngine(TranslationSettings(model=config["model"]))
if config["api_key"]:
    from babelcap.server.gateway.config import GatewayConfig
    from babelcap.server.gateway.routing import create_gateway
    app = create_gateway([], GatewayConfig(api_key=config["api_key"]), engine)
else:
    app = create_app(engine, limits=TranslationLimits(**config["limits"]))
uvicorn.run(app, host="127.0.0.1", port=config["port"], log_level="warning")
"""


@contextmanager
def translation_server(
    model: Path, logs: Path, *, api_key: str | None = None, **limits: int
) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of the stand-alone translation app (``limits``), or with ``api_key`` of
    the gateway serving translation only; stopped on exit."""
    port = free_port()
    config = {"model": str(model), "port": port, "api_key": api_key, "limits": limits}
    log = (logs / f"translation-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE, json.dumps(config)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (logs / f"translation-{port}.log").read_text()
            assert time.monotonic() < deadline, "the translation server did not start"
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def alone(artifacts, tmp_path_factory):
    limits = {"max_chars": 300_000, "max_sentences": 6000}
    logs = tmp_path_factory.mktemp("alone")
    with translation_server(artifacts / "nllb-ct2", logs, **limits) as served:
        yield served


@pytest.fixture(scope="module")
def gateway(artifacts, tmp_path_factory):
    logs = tmp_path_factory.mktemp("gateway")
    with translation_server(artifacts / "nllb-ct2", logs, api_key=KEY) as served:
        yield served


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _many(count: int) -> list[str]:
    return [f"The small dog number {i} is sleeping in the park." for i in range(count)]


@pytest.mark.parametrize("where", ["alone", "gateway"])
def test_a_client_that_leaves_cancels_its_work_and_the_next_request_is_quick(where, request):
    base, pid = request.getfixturevalue(where)
    big = {"q": _many(3500), "source": "en", "target": "fr", "api_key": KEY}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(f"{base}/translate", json=big, timeout=1.5)
    time.sleep(1.5)  # the round already in CTranslate2 may finish
    cpu = _cpu_seconds(pid)
    time.sleep(2.0)
    busy = _cpu_seconds(pid) - cpu
    assert busy < 0.25, f"the server kept working for a client that left ({busy:.1f} s CPU)"
    started = time.monotonic()
    small = httpx.post(
        f"{base}/translate", data={"q": SENTENCE, "source": "en", "target": "fr", "api_key": KEY}
    )
    assert small.status_code == 200 and small.json() == {
        "translatedText": "L'image est surtout rouge."
    }
    assert time.monotonic() - started < 2.0


def test_requests_over_a_limit_are_refused_naming_it_and_how_to_raise_it(alone):
    base, _ = alone
    chars = httpx.post(
        f"{base}/v1/translations", json={"text": "x" * 300_001, "target_languages": ["fr"]}
    )
    assert chars.status_code == 413
    error = chars.json()["error"]
    assert error["code"] == "too_many_characters"
    assert "300001 characters" in error["message"] and "--max-translation-chars" in error["message"]
    sentences = httpx.post(
        f"{base}/v1/translations", json={"text": _many(3001), "target_languages": ["fr", "es"]}
    )
    assert sentences.status_code == 413
    assert "6002 sentences x target languages" in sentences.json()["error"]["message"]
    libre = httpx.post(f"{base}/translate", data={"q": "x" * 300_001, "target": "fr"})
    assert libre.status_code == 400  # LibreTranslate answers its own character limit 400
    assert "--max-translation-chars" in libre.json()["error"]


def test_a_200000_letter_run_comes_back_translated_in_pieces(alone):
    text = "".join(random.Random(1).choices("abcdefghijklmnopqrstuvwxyz", k=200_000))
    answer = httpx.post(
        f"{alone[0]}/v1/translations", json={"text": text, "target_languages": ["fr"]}, timeout=300
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["usage"]["sentences"] > 100  # split into pieces under 200 tokens, not cut
    assert len(body["translations"][0]["texts"][0]) > 1000


def test_an_empty_translation_is_a_422_with_a_request_id_never_an_empty_200(alone):
    # The tiny model never learnt Chinese: its English for 20,000 characters is empty.
    text = "".join(chr(0x4E00 + (i * 7919) % 20_000) for i in range(20_000))
    answer = httpx.post(f"{alone[0]}/translate", json={"q": text, "source": "zh", "target": "en"})
    assert answer.status_code == 422
    assert "empty translation into eng_Latn" in answer.json()["error"]
    assert answer.headers["x-request-id"] in answer.json()["error"]
    v1 = httpx.post(
        f"{alone[0]}/v1/translations",
        json={"text": text, "source_language": "zho_Hans", "target_languages": ["en"]},
    )
    assert v1.status_code == 422 and v1.json()["error"]["code"] == "empty_translation"


@pytest.mark.parametrize("text", ["x" * 1_000_000, "dog " * 250_000], ids=["letters", "words"])
def test_a_megabyte_without_punctuation_is_translated(artifacts, text):
    async def scenario() -> tuple[int, float]:
        engine = TranslationEngine(TranslationSettings(model=artifacts / "nllb-ct2"))
        limits = TranslationLimits(max_chars=2_000_000, max_sentences=100_000)
        app = create_app(engine, max_body_bytes=2_000_000, limits=limits)
        stop, lags = asyncio.Event(), [0.0]

        async def probe() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - started - 0.001)

        watcher = asyncio.create_task(probe())
        await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=300) as c:
            body = json.dumps({"text": text, "target_languages": ["fra_Latn"]})
            answer = await c.post(
                "/v1/translations", content=body, headers={"content-type": "application/json"}
            )
        stop.set()
        await watcher
        await engine.aclose()
        return answer.status_code, max(lags)

    status, worst = asyncio.run(scenario())
    assert status == 200
    # How long the event loop stalls is a speed figure, measured by python -m
    # babelcap.benchmarks.gateway_stall (8 ms for 199,000 letters) and not asserted here: on a
    # loaded 2-core CI machine the lag of this in-process probe swung from 20 to 600 ms.
    print(f"worst event-loop lag: {worst * 1000:.0f} ms")


def test_openapi_documents_every_translation_route_and_status(alone, gateway):
    for base in (alone[0], gateway[0]):
        paths = httpx.get(f"{base}/openapi.json", headers={"authorization": f"Bearer {KEY}"})
        spec = paths.json()["paths"]
        statuses = {
            (path, method): set(operation["responses"])
            for path, item in spec.items()
            for method, operation in item.items()
        }
        # 422 is the model's empty answer to a text with words (never FastAPI's body check).
        assert statuses[("/v1/translations", "post")] == {
            "200", "400", "401", "408", "413", "422", "500"
        }  # fmt: skip
        for path, empty in (("/translate", {"422"}), ("/detect", set())):
            assert statuses[(path, "post")] == {
                "200", "400", "401", "403", "408", "413", "500", *empty
            }  # fmt: skip
            content = spec[path]["post"]["requestBody"]["content"]
            assert set(content) == {
                "application/json", "application/x-www-form-urlencoded", "multipart/form-data"
            }  # fmt: skip
        assert statuses[("/languages", "get")] == {"200", "401", "403"}
        assert statuses[("/frontend/settings", "get")] == {"200", "401", "403"}
        assert len([key for key in statuses if key[0] in ROUTES]) == 5
    # What is documented is what is answered: a bad body is 400, not FastAPI's 422.
    bad = httpx.post(f"{alone[0]}/v1/translations", json={"text": 5, "target_languages": "fr"})
    assert bad.status_code == 400 and "target_languages" in bad.json()["error"]["message"]
