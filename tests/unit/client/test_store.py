"""The results file: whole lines only, resume keeps what matches and loses nothing."""

from __future__ import annotations

import json

import pytest

from babelcap.client.records import ResultRecord, TaskResult
from babelcap.client.store import ResultStore, atomic_path, content_hash, read_records, write_json
from babelcap.core.errors import ConfigurationError


def _record(path, status="ok", settings="s1", content="c1"):
    return {"path": path, "kind": "image", "status": status, "settings_hash": settings,
            "content_hash": content, "error": None}  # fmt: skip


def _typed(path, text=""):
    return ResultRecord(path=path, kind="image", tasks={"description": TaskResult(text=text)})


def test_new_run_refuses_an_existing_results_file(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"path": "x"}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"--resume .* --overwrite"):
        ResultStore(out).open()


def test_append_writes_whole_utf8_lines(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    store.open()
    store.append(_typed("a", "हिन्दी"))
    store.append(_typed("b"))
    store.close()
    raw = (tmp_path / "r.jsonl").read_text(encoding="utf-8")
    assert raw.endswith("\n") and "हिन्दी" in raw
    assert [r.path for r in read_records(tmp_path / "r.jsonl")] == ["a", "b"]


def test_resume_keeps_matching_ok_records_and_moves_the_rest_aside(tmp_path):
    out = tmp_path / "r.jsonl"
    lines = [
        json.dumps(_record("a")),
        json.dumps(_record("b", status="error")),
        json.dumps(_record("c", settings="other")),
        json.dumps(_record("a")),  # a duplicate is kept once
        '{"path": "d", "kind": "im',  # torn by a crash
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
    store = ResultStore(out, mode="resume", settings="s1")
    store.open()
    assert store.is_done("a", "c1") and not store.is_done("a", "c2")
    assert not store.is_done("b", "c1")
    store.append(ResultRecord.model_validate(_record("b")))
    store.close()
    assert [r.path for r in read_records(out)] == ["a", "b"]
    aside = (tmp_path / "r.jsonl.replaced.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(aside) == 4  # error b, other-settings c, duplicate a, torn d: nothing lost
    assert (store.kept, store.replaced) == (1, 4)


def test_overwrite_truncates(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps(_record("a")) + "\n", encoding="utf-8")
    store = ResultStore(out, mode="overwrite")
    store.open()
    store.close()
    assert out.read_text(encoding="utf-8") == ""


def test_content_hash_follows_bytes_not_names(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "b").write_bytes(b"x" * 100)
    (tmp_path / "c").write_bytes(b"y" * 100)
    assert content_hash(tmp_path / "a") == content_hash(tmp_path / "b")
    assert content_hash(tmp_path / "a") != content_hash(tmp_path / "c")


def test_a_failed_atomic_write_keeps_the_old_file_whole(tmp_path):
    target = write_json(tmp_path / "summary.json", {"assets": 3})
    with pytest.raises(TypeError):
        write_json(target, {"assets": object()})  # not JSON: fails before the rename
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text('{"assets": 1', "utf-8")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text("utf-8")) == {"assets": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
