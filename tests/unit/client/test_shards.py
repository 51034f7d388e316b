"""Results as shards in a local folder and in an S3 prefix (moto's server on 127.0.0.1): whole
shards only, resume keeping one ok record per asset and setting the rest aside (nothing lost),
the job lock, fetching shards, and which outputs are sharded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from babelcap.client import shards
from babelcap.client.records import ResultRecord, TaskResult
from babelcap.client.shards import SHARD_GLOB, ShardLock, ShardStore, fetch_shards, is_sharded
from babelcap.core.errors import ConfigurationError
from tests.s3_fixtures import S3Endpoint

SETTINGS = "settings-1"
REPO = Path(__file__).resolve().parents[3]


def record(path: str, *, status: str = "ok", content: str = "c1", settings: str = SETTINGS,
           text: str = "a caption") -> ResultRecord:  # fmt: skip
    return ResultRecord(
        path=path, kind="image", status=status,  # type: ignore[arg-type]
        tasks={"description": TaskResult(text=text)} if status == "ok" else {},
        content_hash=content, settings_hash=settings,
    )  # fmt: skip


def line(path: str, **options: Any) -> bytes:
    return (json.dumps(record(path, **options).to_json()) + "\n").encode()


def _lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(x) for x in data.splitlines() if x.strip()]


class Out:
    """The output as the tests see it: a local folder or an S3 prefix."""

    def __init__(self, uri: str, s3: S3Endpoint | None = None, folder: Path | None = None):
        self.uri, self.s3, self.folder = uri, s3, folder

    def names(self) -> list[str]:
        if self.s3 is not None:
            bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
            return [k[len(prefix) + 1 :] for k in self.s3.list(bucket, prefix + "/")]
        assert self.folder is not None
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")
                      if p.is_file())  # fmt: skip

    def put(self, name: str, data: bytes) -> None:
        if self.s3 is not None:
            bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
            self.s3.upload(bucket, f"{prefix}/{name}", data)
        else:
            assert self.folder is not None
            target = self.folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def get(self, name: str) -> bytes:
        if self.s3 is not None:
            bucket, _, prefix = self.uri.removeprefix("s3://").partition("/")
            return self.s3.get(bucket, f"{prefix}/{name}")
        assert self.folder is not None
        return (self.folder / name).read_bytes()

    def records(self, under: str = "part-") -> list[dict[str, Any]]:
        return [r for n in self.names() if n.startswith(under) for r in _lines(self.get(n))]


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path, monkeypatch) -> Iterator[Out]:
    if request.param == "local":
        yield Out(str(tmp_path / "out"), folder=tmp_path / "out")
        return
    s3fs = pytest.importorskip("s3fs")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in endpoint.env.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    endpoint.make_bucket(bucket)
    yield Out(f"s3://{bucket}/out", s3=endpoint)
    s3fs.S3FileSystem.clear_instance_cache()


def _store(out: Out, mode: str = "new", **options: Any) -> ShardStore:
    store = ShardStore(out.uri, mode=mode, settings=SETTINGS, **options)
    store.open()
    return store


def test_a_new_run_refuses_existing_results_and_overwrite_removes_them(out):
    store = _store(out)
    store.append(record("a.jpg"))
    store.close()
    store.write_summary({"ok": 1})
    with pytest.raises(ConfigurationError, match=r"already has results: pass --resume"):
        ShardStore(out.uri, settings=SETTINGS).open()
    _store(out, "overwrite").close()
    assert [n for n in out.names() if n.startswith("part-") or n == "summary.json"] == []


def test_shards_are_written_whole_by_count_and_by_age(out):
    store = _store(out, shard_records=2, flush_s=3600)
    for name in "abc":
        store.append(record(f"{name}.jpg"))
    assert len([n for n in out.names() if n.startswith("part-")]) == 1  # a, b; c is buffered
    store.flush_s = 0.0
    store.append(record("d.jpg"))  # its buffer's first record (c) is old enough now
    store.close()
    names = out.names()
    assert [n.startswith("part-") and n.endswith(".jsonl") for n in names] == [True, True]
    assert sorted(r["path"] for r in out.records()) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert store.written == 4


def test_appending_before_open_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="open"):
        ShardStore(str(tmp_path / "o"), settings=SETTINGS).append(record("a.jpg"))


def test_a_local_shard_is_renamed_into_place(tmp_path, monkeypatch):
    """A failure before the rename leaves no shard and no temporary file."""
    store = _store(Out(str(tmp_path / "o"), folder=tmp_path / "o"))
    store.append(record("a.jpg"))

    def broken(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(shards.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        store.flush()
    assert list((tmp_path / "o").iterdir()) == []


_KILLED_WRITER = """
import os, sys, time
from babelcap.client import shards
from babelcap.client.records import ResultRecord
real = os.fsync
def stall(fd):
    real(fd)
    print("writing", flush=True)
    time.sleep(60)
shards.os.fsync = stall
store = shards.ShardStore(sys.argv[1], settings="s", shard_records=1000)
store.open()
for i in range(500):
    store.append(ResultRecord(path=f"{i}.jpg", kind="image", content_hash="c", settings_hash="s"))
store.flush()
"""


def test_a_writer_killed_mid_shard_leaves_no_shard(tmp_path):
    folder = tmp_path / "o"
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(folder)], cwd=REPO,
                              stdout=subprocess.PIPE)  # fmt: skip
    assert writer.stdout is not None
    assert writer.stdout.readline() == b"writing\n"  # every byte written, not yet renamed
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    assert list(folder.glob(SHARD_GLOB)) == []
    store = _store(Out(str(folder), folder=folder), "resume")
    assert store.current == {} and store.kept == 0
    store.close()


def test_resume_keeps_one_ok_record_per_asset_and_sets_the_rest_aside(out):
    out.put(
        "part-1-00001.jsonl",
        line("ok.jpg")
        + line("failed.jpg", status="error")
        + line("other.jpg", settings="settings-0")
        + line("dup.jpg", content="c1"),
    )
    out.put("part-2-00001.jsonl", line("dup.jpg", content="c1", text="second")
            + b"not json\n" + b"[1, 2]\n" + b'{"path": "torn.jpg", "st')  # fmt: skip
    store = _store(out, "resume")
    assert store.is_done("ok.jpg", "c1") and store.is_done("dup.jpg", "c1")
    assert not store.is_done("failed.jpg", "c1") and not store.is_done("other.jpg", "c1")
    assert (store.kept, store.replaced) == (2, 6)
    kept = out.records()
    assert sorted(r["path"] for r in kept) == ["dup.jpg", "ok.jpg"]
    # Nothing lost: each line dropped is in _babelcap/replaced/.
    aside = b"".join(out.get(n) for n in out.names() if n.startswith("_babelcap/replaced/"))
    for dropped in (b'"failed.jpg"', b'"other.jpg"', b"not json", b"[1, 2]", b'"torn.jpg", "st'):
        assert dropped in aside
    assert aside.count(b'"dup.jpg"') == 1
    store.append(record("failed.jpg"))
    store.close()
    assert sorted(r["path"] for r in out.records()) == ["dup.jpg", "failed.jpg", "ok.jpg"]


def test_a_changed_asset_is_redone_and_its_old_record_removed_at_close(out):
    out.put("part-1-00001.jsonl", line("a.jpg", content="old") + line("b.jpg")
            + line("c.jpg", status="error"))  # fmt: skip
    store = _store(out, "resume")
    assert not store.is_done("a.jpg", "new") and store.is_done("a.jpg", "old")
    store.append(record("a.jpg", content="new"))
    store.append(record("c.jpg"))
    store.close()
    records = out.records()
    assert sorted((r["path"], r["content_hash"]) for r in records) == [
        ("a.jpg", "new"), ("b.jpg", "c1"), ("c.jpg", "c1")]  # fmt: skip
    assert store.changed == 1
    # Both set-aside steps (compaction: c's error; close: a's old record) kept their lines.
    aside = [r for n in out.names() if n.startswith("_babelcap/replaced/")
             for r in _lines(out.get(n))]  # fmt: skip
    assert sorted((r["path"], r["status"]) for r in aside) == [("a.jpg", "ok"), ("c.jpg", "error")]


@pytest.mark.parametrize(
    "hostile",
    [b"[" * 100_000 + b"\n", b"\xff\xfe not utf-8\n", b'{"path": 7}\n', b"null\n",
     b'{"path": "' + b"x" * 5_000_000 + b'", "status": "error"}\n'],
    ids=["deep", "binary", "path-not-str", "null", "huge"],
)  # fmt: skip
def test_resume_survives_hostile_shard_lines(tmp_path, hostile):
    out = Out(str(tmp_path / "o"), folder=tmp_path / "o")
    out.put("part-1-00001.jsonl", line("a.jpg") + hostile)
    store = _store(out, "resume")
    assert store.is_done("a.jpg", "c1") and store.replaced == 1
    store.close()
    [aside] = [n for n in out.names() if n.startswith("_babelcap/replaced/")]
    assert out.get(aside) == hostile


def test_an_output_that_is_a_file_is_refused_up_front(tmp_path):
    target = tmp_path / "results.jsonl"
    target.write_text("{}\n")
    with pytest.raises(ConfigurationError, match="not a folder"):
        ShardStore(str(target), settings=SETTINGS).open()


def test_a_prefix_with_pattern_characters_finds_its_shards(out):
    weird = Out(out.uri + "[1]*", out.s3, out.folder.with_name("o[1]*") if out.folder else None)
    store = _store(weird)
    store.append(record("a.jpg"))
    store.close()
    assert len(ShardStore(weird.uri, settings=SETTINGS).location.shards()) == 1
    with pytest.raises(ConfigurationError, match="already has results"):
        ShardStore(weird.uri, settings=SETTINGS).open()


# --- the lock -----------------------------------------------------------------------------------


def _lock_body(**fields: Any) -> bytes:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": "t",
                       "heartbeat": time.time(), **fields}).encode()  # fmt: skip


def test_the_lock_refuses_a_live_holder(out):
    with ShardLock(out.uri), pytest.raises(ConfigurationError, match="being written by another"):
        ShardLock(out.uri).__enter__()
    assert "_babelcap/lock.json" not in out.names()  # released on exit


def test_the_lock_takes_over_a_dead_pid_on_this_host(out):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.put("_babelcap/lock.json", _lock_body(pid=dead.pid))
    with ShardLock(out.uri) as lock:
        assert json.loads(out.get("_babelcap/lock.json"))["token"] == lock.token


def test_the_lock_of_another_host_holds_until_its_heartbeat_is_stale(out):
    out.put("_babelcap/lock.json", _lock_body(host="elsewhere", pid=1))
    with pytest.raises(ConfigurationError, match="pid 1 on elsewhere"):
        ShardLock(out.uri).__enter__()
    stale = time.time() - shards.LOCK_STALE_S - 5
    out.put("_babelcap/lock.json", _lock_body(host="elsewhere", pid=1, heartbeat=stale))
    with ShardLock(out.uri):
        pass


@pytest.mark.parametrize("body", [b"", b"{torn", b"[]", b'{"host": 1}', b'{"heartbeat": "x"}'])
def test_a_torn_lock_is_taken_over(out, body):
    out.put("_babelcap/lock.json", body)
    with ShardLock(out.uri):
        pass


def test_a_lock_taken_over_by_another_job_is_not_removed_by_the_first(out):
    lock = ShardLock(out.uri)
    lock.__enter__()
    out.put("_babelcap/lock.json", _lock_body(host="elsewhere", token="theirs"))
    lock.__exit__(None, None, None)
    assert json.loads(out.get("_babelcap/lock.json"))["token"] == "theirs"


# --- fetching and naming --------------------------------------------------------------------------


def test_fetch_shards_copies_shards_and_summary(out, tmp_path):
    with pytest.raises(ConfigurationError, match="holds no result shards"):
        fetch_shards(out.uri, tmp_path / "none")
    store = _store(out, shard_records=1)
    store.append(record("a.jpg"))
    store.append(record("b.jpg"))
    store.close()
    store.write_summary({"ok": 2})
    folder = fetch_shards(out.uri + "/", tmp_path / "got")
    assert sorted(p.name for p in folder.iterdir())[-1] == "summary.json"
    assert len(list(folder.glob(SHARD_GLOB))) == 2


def test_is_sharded_rules(tmp_path):
    assert is_sharded("s3://b/out") and is_sharded("gs://b/out/")
    assert is_sharded(str(tmp_path / "new") + "/")
    assert not is_sharded(str(tmp_path / "results.jsonl"))
    assert not is_sharded(str(tmp_path))  # a plain existing folder: not taken for shards
    assert not is_sharded(f"file://{tmp_path}")
    (tmp_path / "part-x-00001.jsonl").write_text("")
    assert is_sharded(str(tmp_path)) and is_sharded(f"file://{tmp_path}")
    (tmp_path / "m" / "_babelcap").mkdir(parents=True)
    assert is_sharded(str(tmp_path / "m"))
