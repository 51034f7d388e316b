"""The HTML review report of the bundled examples plus broken media, opened in a real headless
Chromium (Debian's ``chromium``, driven by Playwright): previews made from the media, filters,
the language switch with right-to-left text, hostile captions shown as text, nothing fetched
from the network. The screenshot is kept as a test artifact and copied to out/."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from babelcap.client.export import export
from babelcap.client.records import RecordError, TaskResult, make_record

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "client" / "examples"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
ARABIC = "منتج أحمر على خلفية بيضاء."


def _task(text, latency, tags=None):
    return TaskResult(text=text, prompt_tokens=120, completion_tokens=len(text.split()),
                      ttft_s=0.2, latency_s=latency, finish_reason="stop", temperature=0.2,
                      tags=tags)  # fmt: skip


def _ok(path, kind, description, tags, seconds, media, arabic=None):
    translations = {
        "fra_Latn": {"description": f"FR: {description}"},
        "arb_Arab": {"description": arabic or f"AR: {description}"},
        "heb_Hebr": {"description": "מוצר אדום."},
        "hin_Deva": {"description": "एक लाल उत्पाद।"},
    }
    record = make_record(
        str(path), kind, model=f"tiny-{kind}", media=media,
        tasks={"description": _task(description, seconds * 0.6),
               "tags": _task(", ".join(tags), 0.3, tags=tags),
               "sentiment": _task("Positive and calm.", 0.4)},
        translations=translations,
        timings={"prepare_s": 0.02, "inference_s": seconds * 0.7, "translation_s": 0.2},
    )  # fmt: skip
    return record.model_copy(update={"seconds": seconds})


def _records(media: Path):
    return [
        _ok(media / "red-product.jpg", "image", "A red product on a white label.",
            ["red", "product", "label"], 2.5, {"size": 13000, "width": 640, "height": 480},
            arabic=ARABIC),
        _ok(media / "green-logo.png", "image", "A green logo with a clear band.",
            ["green", "logo"], 1.2, {"size": 900, "width": 256, "height": 256}),
        _ok(media / "four-colours.mp4", "video", "Four colours: red, green, blue, yellow.",
            ["red", "green", "blue", "yellow"], 6.0,
            {"size": 9000, "width": 128, "height": 96, "duration": 4.0, "fps": 8.0,
             "frame_count": 32, "sampled_timestamps": [0.5, 1.5, 2.5, 3.5]}),
        _ok(media / "hostile.jpg", "image", HOSTILE, ["<b>bold</b>", "red"], 0.8,
            {"size": 13000, "width": 640, "height": 480}),
        make_record(str(media / "broken.jpg"), "image",
                    error=RecordError(kind="decode", message="broken.jpg: cannot identify image "
                                      "file (truncated or not an image)")),
        make_record(str(media / "cut.mp4"), "video",
                    error=RecordError(kind="decode", message="cut.mp4: no video stream")),
    ]  # fmt: skip


@pytest.fixture
def report(tmp_path):
    media = tmp_path / "ads"
    media.mkdir()
    for name in ("red-product.jpg", "green-logo.png", "four-colours.mp4"):
        shutil.copy(EXAMPLES / name, media / name)
    shutil.copy(EXAMPLES / "red-product.jpg", media / "hostile.jpg")
    (media / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (media / "cut.mp4").write_bytes((EXAMPLES / "four-colours.mp4").read_bytes()[:300])
    results = tmp_path / "results.jsonl"
    with results.open("w", encoding="utf-8") as handle:
        for record in _records(media):
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    out = tmp_path / "report" / "report.html"
    exported = export(results, "html", out)
    assert exported.count == 6
    return out


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make stack installs it as root)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _until(page, expression, timeout=10.0):
    """Poll ``expression`` (the page's CSP forbids the eval that wait_for_function uses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, expression
        time.sleep(0.05)


def test_report_escapes_records_and_stays_offline(report):
    page = report.read_text("utf-8")
    assert "<script>window.__pwned" not in page and "\\u003cscript\\u003e" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    previews = sorted(p.name for p in (report.parent / "report_files").iterdir())
    assert "0000000-0.jpg" in previews and "0000002-3.jpg" in previews  # 4 video frames
    assert not any(p.startswith("0000004") for p in previews)  # the broken file: none


def test_report_in_headless_chromium(report, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    fetched, problems = [], []
    page.on("request", lambda r: fetched.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(report.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator(".card").count() == 6
    assert page.locator("#count").inner_text() == "6 of 6 assets"
    assert "latency p50" in page.locator("#figures").inner_text()
    assert page.locator("#histogram svg rect.bar").count() == 24

    # Previews made from the media: every image loaded, video frames in order.
    for img in page.locator(".card img").all():
        img.scroll_into_view_if_needed()
    _until(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    video = page.locator(".card[data-kind='video'][data-status='ok']")
    assert video.locator("img").count() == 4

    # A hostile caption is text: shown as written, nothing ran, no element made from it.
    hostile = page.locator(".card", has_text="window.__pwned").locator("p[data-task='description']")
    assert hostile.inner_text() == HOSTILE
    assert hostile.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".chip", has_text="<b>bold</b>").count() == 1

    # Filter to errors: the two failures with their reasons.
    page.select_option("#status", "error")
    assert page.locator(".card").count() == 2
    assert all(c.get_attribute("data-status") == "error" for c in page.locator(".card").all())
    reasons = page.locator(".reason").all_inner_texts()
    assert reasons == ["decode: broken.jpg: cannot identify image file (truncated or not an "
                       "image)", "decode: cut.mp4: no video stream"]  # fmt: skip
    page.screenshot(path=str(tmp_path / "report-errors.png"), full_page=True)

    # Back to all; by kind, by tag (a chip click), by text, sorted by latency.
    page.select_option("#status", "")
    page.select_option("#kind", "video")
    assert page.locator(".card").count() == 2
    page.select_option("#kind", "")
    page.locator(".chip", has_text="logo").first.click()
    assert page.locator(".card h2").all_inner_texts() == ["green-logo.png"]
    page.click("#clear")
    page.fill("#search", "four colours")
    _until(page, "document.querySelectorAll('.card').length === 1")
    page.click("#clear")
    page.select_option("#sort", "slow")
    assert page.locator(".card h2").first.inner_text() == "four-colours.mp4"

    # Language switch: Arabic right to left, Hindi and French in their own words.
    page.select_option("#sort", "")
    page.select_option("#language", "arb_Arab")
    red = page.locator(".card", has=page.locator("h2", has_text="red-product.jpg"))
    text = red.locator("p[data-task='description']")
    assert text.inner_text() == ARABIC
    assert text.get_attribute("dir") == "rtl" and text.get_attribute("lang") == "arb-Arab"
    assert (
        page.evaluate("getComputedStyle(document.querySelector(\"p[dir='rtl']\")).direction")
        == "rtl"
    )
    page.select_option("#language", "heb_Hebr")
    assert text.get_attribute("dir") == "rtl" and text.inner_text() == "מוצר אדום."
    page.select_option("#language", "hin_Deva")
    assert text.inner_text() == "एक लाल उत्पाद।" and text.get_attribute("dir") == "auto"
    page.select_option("#language", "arb_Arab")
    shot = tmp_path / "report-screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    (ROOT / "out").mkdir(exist_ok=True)
    shutil.copy(shot, ROOT / "out" / "report-screenshot.png")
    shutil.copy(tmp_path / "report-errors.png", ROOT / "out" / "report-errors.png")

    assert problems == []  # no script error, no blocked resource
    assert {u.split(":", 1)[0] for u in fetched} <= {"file", "data"}  # nothing from a network
    assert page.evaluate("window.__pwned") is None
