"""The scale-out tests' own fixtures work: a real S3 endpoint (moto server) that s3fs reaches with
the standard environment variables alone, and a local Ray cluster that a driver subprocess joins
through RAY_ADDRESS and runs an async actor-pool stage on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.s3_fixtures import RayCluster, S3Endpoint, child_env

#: Lists a prefix as a stream from sync code: s3fs's async page iterator (`_iterdir`, one
#: list_objects_v2 page at a time, flat memory), driven on fsspec's own event-loop thread.
S3FS_LISTING = textwrap.dedent(
    """
    import json, sys
    import fsspec
    from fsspec.asyn import sync

    fs = fsspec.filesystem("s3", skip_instance_cache=True)   # nothing but the environment
    bucket, prefix = sys.argv[1], sys.argv[2]
    pages = fs._iterdir(bucket, prefix=prefix, delimiter="")
    entries = []
    while True:
        try:
            entry = sync(fs.loop, pages.__anext__)
        except StopAsyncIteration:
            break
        entries.append({"name": entry["name"], "size": entry["size"], "etag": entry["ETag"]})
    with fs.open(f"{bucket}/{prefix}a.txt", "rb", block_size=2) as f:
        f.seek(1)
        part = f.read(3).decode()
    fs.pipe_file(f"{bucket}/out/result.json", b'{"ok": true}')
    print(json.dumps({"entries": entries, "part": part}))
    """
)


def test_s3_endpoint_reached_by_s3fs_through_the_environment_alone(
    s3_endpoint: S3Endpoint, tmp_path
) -> None:
    bucket = "fixtures-s3fs"
    assert s3_endpoint.make_bucket(bucket) == f"s3://{bucket}"
    etag = s3_endpoint.upload(bucket, "media/a.txt", b"abcdef")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "b.bin").write_bytes(b"\x00" * 10)
    (tree / "sub" / "c.bin").write_bytes(b"\x01" * 20)
    assert s3_endpoint.upload_tree(bucket, "media/", tree) == ["media/b.bin", "media/sub/c.bin"]
    s3_endpoint.upload(bucket, "elsewhere/d.txt", b"d")

    done = subprocess.run(
        [sys.executable, "-c", S3FS_LISTING, bucket, "media/"],
        env=s3_endpoint.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    entries = sorted(result["entries"], key=lambda e: e["name"])
    assert [(e["name"], e["size"]) for e in entries] == [
        (f"{bucket}/media/a.txt", 6),
        (f"{bucket}/media/b.bin", 10),
        (f"{bucket}/media/sub/c.bin", 20),
    ]
    assert entries[0]["etag"] == etag  # quoted, as S3 lists and heads it
    assert result["part"] == "bcd"  # a range read
    assert s3_endpoint.get(bucket, "out/result.json") == b'{"ok": true}'
    assert s3_endpoint.list(bucket, "out/") == ["out/result.json"]

    # In this process, which does not carry the environment: storage_options.
    s3fs = pytest.importorskip("s3fs")
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_endpoint.storage_options)
    assert fs.cat_file(f"{bucket}/media/sub/c.bin") == b"\x01" * 20
    assert fs.info(f"{bucket}/media/a.txt")["ETag"] == etag


#: A driver that joins the cluster named by RAY_ADDRESS and runs an async callable class on an
#: actor pool with fractional CPUs and several calls in flight per actor.
RAY_DRIVER = textwrap.dedent(
    """
    import asyncio, json, os
    import ray
    from ray.data import ActorPoolStrategy

    ray.init(log_to_driver=False)

    class Double:
        def __init__(self):
            self.in_flight = 0
            self.peak = 0

        async def __call__(self, batch):
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            await asyncio.sleep(0.05)
            self.in_flight -= 1
            return {"id": batch["id"], "double": batch["id"] * 2,
                    "peak": [self.peak] * len(batch["id"])}

    ds = ray.data.range(24, override_num_blocks=6).map_batches(
        Double, batch_size=1, num_cpus=0.25,
        compute=ActorPoolStrategy(size=1, max_concurrent_calls_per_actor=4),
    )
    rows = list(ds.iter_rows())
    print(json.dumps({
        "gcs": ray.get_runtime_context().gcs_address,
        "cpus": ray.cluster_resources().get("CPU"),
        "doubles": sorted(int(r["double"]) for r in rows),
        "peak": max(int(r["peak"]) for r in rows),
    }))
    ray.shutdown()
    """
)


@pytest.mark.slow
def test_ray_cluster_runs_an_async_actor_pool_stage(ray_cluster: RayCluster) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RAY_DRIVER],
        env=ray_cluster.child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Joined the fixture's cluster, not a new one (GCS reports the node's own IP, not 127.0.0.1).
    assert result["gcs"].rsplit(":", 1)[1] == ray_cluster.address.rsplit(":", 1)[1]
    assert result["cpus"] == 4
    assert result["doubles"] == [2 * i for i in range(24)]
    assert result["peak"] > 1  # several calls in flight on the one actor


def test_child_env_drops_inherited_endpoints() -> None:
    env = child_env(
        {"AWS_ACCESS_KEY_ID": "testing"},
        base={
            "PATH": "/bin",
            "AWS_PROFILE": "prod",
            "AWS_SESSION_TOKEN": "x",
            "RAY_ADDRESS": "far:1",
            "HTTPS_PROXY": "http://proxy:3128",
        },
    )
    assert env == {"PATH": "/bin", "AWS_ACCESS_KEY_ID": "testing"}
