"""`babelcap caption` past one machine, for real: media in an S3 bucket (moto's server on
127.0.0.1), results written to the bucket, the real `babelcap serve --profile tiny-cpu`, and the
Ray engine on a local Ray cluster. The driver is killed mid-run and resumed; one server of two is
killed mid-run; each asset must end up in the output exactly once."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.serving import KEY, vllm_children
from tests.s3_fixtures import RayCluster, S3Endpoint

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

EXAMPLES = Path(__file__).parents[2] / "client" / "examples"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 220, 30)}  # fmt: skip


def _jpeg(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), COLOURS[colour]).save(buffer, "JPEG")
    return buffer.getvalue()


def _babelcap(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "babelcap", *args], env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _records(s3: S3Endpoint, bucket: str, prefix: str) -> list[dict]:
    records = []
    for key in _shards(s3, bucket, prefix):
        records += [json.loads(line) for line in s3.get(bucket, key).splitlines()]
    return records


def _shards(s3: S3Endpoint, bucket: str, prefix: str) -> list[str]:
    """The result shards under ``prefix`` (what was set aside under _babelcap/ is not one)."""
    return [k for k in s3.list(bucket, prefix) if k.removeprefix(prefix).startswith("part-")]


def _comparable(record: dict) -> dict:
    """A record without what differs from run to run: timings."""
    record = {k: v for k, v in record.items() if k not in ("timings", "seconds", "finished_at")}
    record["tasks"] = {
        name: {k: v for k, v in task.items() if k not in ("ttft_s", "latency_s")}
        for name, task in record.get("tasks", {}).items()
    }
    return record


@pytest.fixture(scope="module")
def ads(s3_endpoint: S3Endpoint) -> str:
    """s3://media/ads: good images and a video, damaged media, and files that are not media."""
    s3_endpoint.make_bucket("media")
    for path in EXAMPLES.iterdir():
        if path.suffix in (".jpg", ".png", ".mp4"):
            s3_endpoint.upload("media", f"ads/{path.name}", path.read_bytes())
    for index, colour in enumerate(COLOURS):
        s3_endpoint.upload("media", f"ads/sub/{colour} {index}.jpg", _jpeg(colour))
    s3_endpoint.upload("media", "ads/truncated.jpg", _jpeg("red")[:200])
    s3_endpoint.upload("media", "ads/not-a-video.mp4", b"this is text, not a video")
    s3_endpoint.upload("media", "ads/notes.txt", b"not media")
    s3_endpoint.upload("media", "ads/.hidden/skip.jpg", _jpeg("blue"))
    s3_endpoint.upload("media", "ads2/beside.jpg", _jpeg("blue"))  # a sibling prefix: not listed
    s3_endpoint.make_bucket("results")
    return "s3://media/ads"


def test_the_ray_engine_writes_the_same_records_as_the_local_engine(
    gateway, s3_endpoint: S3Endpoint, ray_cluster: RayCluster, ads: str, tmp_path: Path
):
    base, _ = gateway
    env = s3_endpoint.child_env(ray_cluster.env, {"BABELCAP_API_KEY": KEY})
    common = [ads, "--server", base, "--server", base, "--quiet"]
    local = _babelcap(env, "caption", *common, "--output", "s3://results/local")
    assert local.returncode == 1, local.stderr  # the damaged media fail; the run goes on
    ray = _babelcap(env, "caption", *common, "--engine", "ray", "--output", "s3://results/ray")
    assert ray.returncode == 1, ray.stderr
    assert "Traceback" not in ray.stderr, ray.stderr

    by_local = {r["path"]: r for r in _records(s3_endpoint, "results", "local/")}
    by_ray = {r["path"]: r for r in _records(s3_endpoint, "results", "ray/")}
    assert sorted(by_ray) == sorted(by_local)
    assert len(by_ray) == 3 + 4 + 2  # the examples, four colours, two damaged; nothing else
    for path, record in by_local.items():
        assert _comparable(by_ray[path]) == _comparable(record), path
    ok = {p: r for p, r in by_ray.items() if r["status"] == "ok"}
    assert len(ok) == 7
    for colour in COLOURS:
        (record,) = [r for p, r in ok.items() if f"/{colour} " in p]
        assert colour in record["tasks"]["description"]["text"].lower()
        assert record["content_hash"].startswith("etag:")
        assert set(record["translations"]) == {"fra_Latn", "spa_Latn", "hin_Deva"}
    damaged = by_ray[f"{ads}/not-a-video.mp4"]
    assert damaged["status"] == "error" and "not-a-video.mp4" in damaged["error"]["message"]

    summary = json.loads(s3_endpoint.get("results", "ray/summary.json"))
    assert summary["engine"]["name"] == "ray" and summary["engine"]["ray_start_s"] > 0
    assert summary["skipped"] == {"not media": 1, "hidden": 1}
    exported = _babelcap(env, "export", "s3://results/ray", "--format", "csv",
                         "--output", str(tmp_path / "ray.csv"))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "ray.csv").read_text("utf-8").splitlines()) == 1 + len(by_ray)


def _wait_for_shards(s3: S3Endpoint, bucket: str, prefix: str, count: int, process) -> None:
    deadline = time.monotonic() + 300
    while len(_shards(s3, bucket, prefix)) < count:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no shard was written"
        time.sleep(0.3)


def test_a_driver_killed_mid_run_resumes_and_writes_every_asset_once(
    gateway, s3_endpoint: S3Endpoint, ray_cluster: RayCluster
):
    base, _ = gateway
    s3_endpoint.make_bucket("kill")
    colours = list(COLOURS)
    for index in range(24):
        s3_endpoint.upload("kill", f"in/{index:02d}.jpg", _jpeg(colours[index % 4]))
    s3_endpoint.upload("kill", "in/broken.png", b"\x89PNG\r\n\x1a\n broken")
    env = s3_endpoint.child_env(ray_cluster.env, {"BABELCAP_API_KEY": KEY})
    args = ["caption", "s3://kill/in", "--engine", "ray", "--server", base, "--output",
            "s3://kill/out", "--shard-records", "2", "--quiet"]  # fmt: skip
    driver = subprocess.Popen([sys.executable, "-m", "babelcap", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_for_shards(s3_endpoint, "kill", "out/", 2, driver)
    finally:
        driver.kill()  # SIGKILL: no handler runs, whatever was buffered is lost
        driver.wait()
    before = _records(s3_endpoint, "kill", "out/")
    assert 0 < len(before) < 25
    assert len({r["path"] for r in before}) == len(before)

    resumed = _babelcap(env, *args, "--resume")
    assert resumed.returncode == 1, resumed.stderr  # broken.png
    after = _records(s3_endpoint, "kill", "out/")
    counts = Counter(r["path"] for r in after)
    assert len(counts) == 25 and set(counts.values()) == {1}  # every asset, exactly once
    assert sum(r["status"] == "ok" for r in after) == 24
    summary = json.loads(s3_endpoint.get("kill", "out/summary.json"))
    kept = sum(r["status"] == "ok" for r in before)
    assert summary["resumed"] == kept  # only what was not written was sent again
    assert summary["assets"] == 25 - kept

    again = _babelcap(env, *args, "--resume")  # the failed asset is redone, and only it
    summary = json.loads(s3_endpoint.get("kill", "out/summary.json"))
    assert (summary["assets"], summary["resumed"]) == (1, 24), again.stderr
    assert Counter(r["path"] for r in _records(s3_endpoint, "kill", "out/")) == counts
    replaced = [k for k in s3_endpoint.list("kill", "out/_babelcap/replaced/")]
    assert replaced  # the failed records were set aside, not lost


def test_one_server_of_two_killed_mid_run_loses_nothing(
    gateway, s3_endpoint: S3Endpoint, ray_cluster: RayCluster, tmp_path: Path
):
    from babelcap.server.launch import local_server

    base, _ = gateway
    s3_endpoint.make_bucket("fleet")
    colours = list(COLOURS)
    for index in range(30):
        s3_endpoint.upload("fleet", f"in/{index:02d}.jpg", _jpeg(colours[index % 4]))
    env = s3_endpoint.child_env(ray_cluster.env, {"BABELCAP_API_KEY": KEY})
    with local_server(tmp_path / "second", api_key=KEY) as second:
        backends = vllm_children(second.process.pid)
        args = ["caption", "s3://fleet/in", "--engine", "ray", "--server", second.base,
                "--server", base, "--output", "s3://fleet/out", "--shard-records", "2",
                "--quiet"]  # fmt: skip
        driver = subprocess.Popen([sys.executable, "-m", "babelcap", *args], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            _wait_for_shards(s3_endpoint, "fleet", "out/", 1, driver)
            for pid in [second.process.pid, *backends]:  # the whole server, at once
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _, stderr = driver.communicate(timeout=600)
        finally:
            if driver.poll() is None:
                driver.kill()
    assert driver.returncode == 0, stderr.decode()[-3000:]
    records = _records(s3_endpoint, "fleet", "out/")
    counts = Counter(r["path"] for r in records)
    assert len(counts) == 30 and set(counts.values()) == {1}
    assert all(r["status"] == "ok" for r in records)
    summary = json.loads(s3_endpoint.get("fleet", "out/summary.json"))
    assert summary["retries"] > 0  # the requests in flight on the dead server went elsewhere


def test_refusals_are_one_line_exit_2_and_write_nothing(
    gateway, s3_endpoint: S3Endpoint, ads: str, tmp_path: Path
):
    base, _ = gateway
    env = s3_endpoint.child_env({"BABELCAP_API_KEY": KEY})
    no_ray = tmp_path / "no-ray"  # an environment where `import ray` fails, as without the extra
    (no_ray / "ray").mkdir(parents=True)
    (no_ray / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    closed = str(_closed_port())
    secrets = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    no_credentials = {k: v for k, v in env.items() if k not in secrets}
    cases = [
        ({"PYTHONPATH": str(no_ray)}, ["--engine", "ray"], "pip install 'babelcap[ray]'"),
        ({}, ["--engine", "ray", "--ray-address", f"127.0.0.1:{closed}"], "nothing answers"),
        ({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
          "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{closed}", "AWS_MAX_ATTEMPTS": "1"}, [],
         "cannot be reached"),
    ]  # fmt: skip
    for extra, flags, named in cases:
        result = _babelcap({**env, **extra}, "caption", ads, "--server", base, "--output",
                           "s3://results/refused", *flags)  # fmt: skip
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and named in lines[0], result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "babelcap", "caption", ads, "--server", base, "--output",
         "s3://results/refused", "--engine", "ray"],
        env=no_credentials, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "no valid credentials" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert s3_endpoint.list("results", "refused") == []  # nothing written, not even a lock


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sigterm_stops_the_ray_engine_as_ctrl_c_does_and_keeps_what_was_done(
    gateway, s3_endpoint: S3Endpoint, ray_cluster: RayCluster
):
    base, _ = gateway
    s3_endpoint.make_bucket("term")
    colours = list(COLOURS)
    total = 120  # at 2 requests in flight, far more than can finish before the signal
    for index in range(total):
        s3_endpoint.upload("term", f"in/{index:03d}.jpg", _jpeg(colours[index % 4]))
    env = s3_endpoint.child_env(ray_cluster.env, {"BABELCAP_API_KEY": KEY})
    args = ["caption", "s3://term/in", "--engine", "ray", "--server", base, "--output",
            "s3://term/out", "--concurrency", "2", "--shard-records", "7", "--quiet"]  # fmt: skip
    driver = subprocess.Popen([sys.executable, "-m", "babelcap", *args], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_for_shards(s3_endpoint, "term", "out/", 1, driver)  # records are coming back
        driver.send_signal(signal.SIGTERM)
        _, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, stderr
    assert "rerun with --resume" in stderr and "SIGTERM received" not in stderr  # no stack dump
    kept = _records(s3_endpoint, "term", "out/")  # the buffer was written, not lost
    assert 0 < len(kept) < total
    assert s3_endpoint.list("term", "out/_babelcap/lock.json") == []  # the lock was let go
    resumed = _babelcap(env, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    counts = Counter(r["path"] for r in _records(s3_endpoint, "term", "out/"))
    assert len(counts) == total and set(counts.values()) == {1}
