"""LibreTranslate's request parameters: JSON, urlencoded and multipart bodies, the query, and
the API key inside them, parsed by Starlette as a live request would be."""

from __future__ import annotations

import asyncio
import json
import urllib.parse

import httpx
import pytest
from fastapi import Request

from babelcap.core.errors import TranslationError
from babelcap.server.translation.libre import (
    LibreTranslateRequest,
    _parse,
    api_key_from,
    body_fields,
    replay_then,
)


def _scope(content_type: str | None, query: str = "") -> dict:
    headers = [(b"content-type", content_type.encode())] if content_type else []
    return {"type": "http", "method": "POST", "path": "/translate", "headers": headers,
            "query_string": query.encode(), "app": None}  # fmt: skip


def _fields(body: bytes, content_type: str | None, query: str = "") -> dict:
    async def go() -> dict:
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await body_fields(Request(_scope(content_type, query), receive))

    return asyncio.run(go())


def _multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files=[(k, (None, v)) for k, v in fields])
    return request.read(), request.headers["content-type"]


def test_json_urlencoded_and_multipart_give_the_same_fields():
    wanted = {"q": "Hello.", "source": "en", "target": "ar", "api_key": "k"}
    as_json = _fields(json.dumps(wanted).encode(), "application/json; charset=utf-8")
    as_form = _fields(urllib.parse.urlencode(wanted).encode(), "application/x-www-form-urlencoded")
    body, content_type = _multipart(list(wanted.items()))
    assert as_json == as_form == _fields(body, content_type) == wanted


def test_a_repeated_q_is_a_list_and_the_query_counts_for_forms():
    body = urllib.parse.urlencode([("q", "one"), ("q", "two"), ("target", "fr")]).encode()
    fields = _fields(body, "application/x-www-form-urlencoded", query="source=en&target=es")
    assert fields == {"q": ["one", "two"], "source": "en", "target": "es"}  # query first
    assert _fields(b"", None, query="q=hi&target=fr") == {"q": "hi", "target": "fr"}
    assert _fields(b'{"q": "hi"}', None) == {"q": "hi"}  # JSON sent without a content type


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"q": ', "application/json", "Invalid JSON format"),
        (b'["q"]', "application/json", "send an object"),
        (b"q=hi", "text/plain", "'text/plain' is not read"),
    ],
)
def test_bodies_that_cannot_be_read_are_refused_by_name(body, content_type, message):
    with pytest.raises(TranslationError, match=message):
        _fields(body, content_type)


def test_a_file_in_a_form_is_refused():
    request = httpx.Request("POST", "http://x/", files={"file": ("a.txt", b"hello")})
    with pytest.raises(TranslationError, match="form body is broken"):
        _fields(request.read(), request.headers["content-type"])


def test_parameters_are_validated_as_libretranslate_names_them():
    parsed = _parse(LibreTranslateRequest, {"q": "hi", "target": "fr", "alternatives": "2"}, "/t")
    assert parsed.source == "auto" and parsed.alternatives == 2 and parsed.format == "text"
    cases = [
        ({"target": "fr"}, "Invalid request: missing q parameter"),
        ({"q": "", "target": "fr"}, "Invalid request: missing q parameter"),
        ({"q": "hi"}, "Invalid request: missing target parameter"),
        ({"q": "hi", "target": "fr", "char_limit": "9"}, "unknown parameter 'char_limit'"),
        ({"q": "hi", "target": "fr", "alternatives": "x"}, "Invalid request: alternatives"),
    ]
    for fields, message in cases:
        with pytest.raises(TranslationError, match=message):
            _parse(LibreTranslateRequest, fields, "/translate")


def test_the_api_key_is_found_in_json_form_multipart_and_query():
    body, content_type = _multipart([("q", "hi"), ("api_key", "k3")])
    cases = [
        (b'{"q": "hi", "api_key": "k1"}', "application/json", "", "k1"),
        (b"q=hi&api_key=k2", "application/x-www-form-urlencoded", "", "k2"),
        (body, content_type, "", "k3"),
        (b"", None, "api_key=k4", "k4"),
        (b'{"api_key": 5}', "application/json", "", ""),
        (b"{broken", "application/json", "", ""),
    ]
    for raw, kind, query, key in cases:
        assert asyncio.run(api_key_from(_scope(kind, query), raw)) == key


def test_a_replayed_body_is_followed_by_the_real_receive():
    async def go() -> list[dict]:
        async def real() -> dict:
            return {"type": "http.disconnect", "from": "client"}

        receive = replay_then(b"body", real)
        return [await receive(), await receive()]

    first, second = asyncio.run(go())
    assert first["body"] == b"body" and second == {"type": "http.disconnect", "from": "client"}
