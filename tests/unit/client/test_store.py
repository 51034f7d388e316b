"""The results file: whole lines only, resume keeps what matches and loses nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from babelcap.client.records import ResultRecord, TaskResult
from babelcap.client.store import (
    OutputLock,
    ResultStore,
    atomic_path,
    content_hash,
    read_records,
    write_json,
)
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
    assert store.is_done(Path("a"), "c1") and not store.is_done(Path("a"), "c2")
    assert not store.is_done(Path("b"), "c1")
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


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "r.jsonl"
    with OutputLock(out) as held:
        assert held.path.read_text().strip() == str(os.getpid())
        # flock locks belong to open files: a second open in this process conflicts too.
        with pytest.raises(ConfigurationError) as refused, OutputLock(out):
            pass
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and str(out) in message
        assert "\n" not in message
    assert not held.path.exists()  # removed on release
    with OutputLock(out):  # and free again
        pass


def test_a_lock_file_left_behind_by_a_killed_run_is_no_obstacle(tmp_path):
    out = tmp_path / "r.jsonl"
    (tmp_path / "r.jsonl.lock").write_text("12345\n")  # SIGKILL leaves the file, not the lock
    with OutputLock(out) as held:
        assert held.path.read_text().strip() == str(os.getpid())


def test_resume_keeps_one_current_record_per_path_across_edits(tmp_path):
    out = tmp_path / "r.jsonl"
    first = ResultStore(out, mode="new", settings="s1")
    first.open()
    for name in ("a", "b"):
        first.append(ResultRecord.model_validate(_record(name, content="red")))
    first.close()
    # The file "a" changed: the run redoes it; its old record moves to the replaced file.
    second = ResultStore(out, mode="resume", settings="s1")
    second.open()
    assert second.is_done(Path("b"), "red") and not second.is_done(Path("a"), "green")
    second.append(ResultRecord.model_validate(_record("a", content="green")))
    second.close()
    records = {r.path: r.content_hash for r in read_records(out)}
    assert records == {"a": "green", "b": "red"} and len(read_records(out)) == 2
    assert second.changed == 1
    replaced = read_records(tmp_path / "r.jsonl.replaced.jsonl")
    assert [(r.path, r.content_hash) for r in replaced] == [("a", "red")]
    # Edited back: the current record (green) no longer matches, so it is redone again.
    third = ResultStore(out, mode="resume", settings="s1")
    third.open()
    assert not third.is_done(Path("a"), "red")
    third.append(ResultRecord.model_validate(_record("a", content="red")))
    third.close()
    assert {r.path: r.content_hash for r in read_records(out)} == {"a": "red", "b": "red"}
    assert len(read_records(out)) == 2


def test_after_a_crash_mid_resume_the_later_record_of_a_path_is_current(tmp_path):
    out = tmp_path / "r.jsonl"
    lines = [_record("a", content="red"), _record("b"), _record("a", content="green")]
    out.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    store = ResultStore(out, mode="resume", settings="s1")
    store.open()
    store.close()
    assert store.is_done(Path("a"), "green") and not store.is_done(Path("a"), "red")
    assert [(r.path, r.content_hash) for r in read_records(out)] == [("b", "c1"), ("a", "green")]


def test_content_hash_opens_only_regular_files(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"):
        content_hash(tmp_path / "pipe")  # returns at once instead of blocking
