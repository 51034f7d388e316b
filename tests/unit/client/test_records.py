"""Result records: one model, written with the keys (and key order) of the results file."""

from __future__ import annotations

import json

from babelcap.client.records import RecordError, ResultRecord, TaskResult, make_record


def test_a_finished_record_has_every_key_in_the_documented_order():
    task = TaskResult(
        text="A red car.", prompt_tokens=9, completion_tokens=4, ttft_s=0.1, latency_s=0.3,
        finish_reason="stop", temperature=0.0, tags=["car"],
    )  # fmt: skip
    record = make_record(
        "ads/red.jpg", "image", model="m", media={"size": 1}, tasks={"tags": task},
        translations={"fra_Latn": {"description": "Une voiture."}}, hashes=("c", "s"),
        timings={"prepare_s": 0.123456},
    )  # fmt: skip
    line = record.to_json()
    assert list(line) == ["path", "kind", "status", "error", "model", "media", "tasks",
                          "translations", "content_hash", "settings_hash", "timings", "seconds",
                          "finished_at"]  # fmt: skip
    assert list(line["tasks"]["tags"]) == [
        "text", "prompt_tokens", "completion_tokens", "ttft_s", "latency_s", "finish_reason",
        "temperature", "tags",
    ]  # fmt: skip
    assert (
        line["status"] == "ok" and line["error"] is None and line["timings"]["prepare_s"] == 0.1235
    )
    assert ResultRecord.model_validate_json(json.dumps(line)) == record  # read back, the same


def test_a_failed_record_has_no_hashes_and_says_why():
    record = make_record("x.bin", None, error=RecordError(kind="input", message="unreadable"))
    line = record.to_json()
    assert line["status"] == "error" and line["error"] == {"kind": "input", "message": "unreadable"}
    assert "content_hash" not in line and "settings_hash" not in line
    retried = TaskResult(text="x", attempts=2).model_dump()
    assert retried["attempts"] == 2 and "tags" not in retried
    assert "attempts" not in TaskResult(text="x").model_dump()
