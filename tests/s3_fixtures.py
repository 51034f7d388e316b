"""A real S3 endpoint (moto's server) and a real local Ray cluster for the scale-out tests, each a
subprocess of its own, started once per session and stopped at its end.

``s3_endpoint`` runs ``python -m moto.server`` on 127.0.0.1 and a free port; ``ray_cluster`` runs
``ray start --head --block`` with its own temporary folder and ports. Neither touches this
process's environment: tests give ``.env`` (or ``child_env()``) to the subprocesses they start,
which then reach them with the standard variables only (``AWS_ENDPOINT_URL``, ``RAY_ADDRESS``).
The fixtures skip, with the reason, when the ``scale-test`` or ``ray`` extras are not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: moto accepts any credentials; these are the ones its documentation uses.
S3_KEY = "testing"
S3_SECRET = "testing"
S3_REGION = "us-east-1"

#: Variables of the parent environment that could send a client to another endpoint, another
#: account or a proxy; child environments drop them before adding the fixtures' own.
_INHERITED_DROPPED_PREFIXES = ("AWS_", "RAY_")
_PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_env(url: str) -> dict[str, str]:
    """The environment that points botocore, boto3, s3fs (aiobotocore) and pyarrow at ``url``
    and nowhere else: fixed test credentials, no instance metadata, no config files, no proxy."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_REGION": S3_REGION,
        # Never ask an EC2/ECS metadata service for credentials or the region.
        "AWS_EC2_METADATA_DISABLED": "true",
        # No ~/.aws files: a developer's profile must not leak into a test.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def child_env(*parts: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without its AWS_*, RAY_* and proxy
    variables, updated with each of ``parts`` in turn: the ``env=`` for a subprocess."""
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if not key.startswith(_INHERITED_DROPPED_PREFIXES) and key not in _PROXY_VARIABLES
    }
    for part in parts:
        env.update(part)
    return env


def _wait_until(
    ready: Any, process: subprocess.Popen[bytes], log: Path, what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.2)


def _tail(log: Path, size: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL to the process group the fixture created for ``process``."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # Whatever is left in the group (start_new_session: the group is ours alone).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


# --- S3 ---------------------------------------------------------------------------------------


@dataclass
class S3Endpoint:
    """A running moto S3 server. ``env`` holds the variables a subprocess needs to reach it."""

    url: str
    log: Path
    env: dict[str, str] = field(init=False)
    _client: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.env = s3_env(self.url)

    def child_env(self, *more: Mapping[str, str]) -> dict[str, str]:
        """This process's environment, cleaned (see :func:`child_env`), plus :attr:`env`."""
        return child_env(self.env, *more)

    @property
    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` / ``fsspec.open`` in this process, which
        does not carry :attr:`env`."""
        return {
            "key": S3_KEY,
            "secret": S3_SECRET,
            "endpoint_url": self.url,
            "client_kwargs": {"region_name": S3_REGION},
        }

    @property
    def client(self) -> Any:
        """A boto3 S3 client bound to this endpoint (explicit settings, no proxy)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session(
                aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET, region_name=S3_REGION
            ).client("s3", endpoint_url=self.url, config=Config(proxies={}))
        return self._client

    def make_bucket(self, name: str) -> str:
        """Create ``name`` (no error when it exists already); returns ``s3://name``."""
        with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
            self.client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def upload(self, bucket: str, key: str, data: bytes) -> str:
        """Put one object; returns its ETag (quoted, as S3 gives it)."""
        return str(self.client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"])

    def upload_tree(self, bucket: str, prefix: str, folder: Path) -> list[str]:
        """Put each regular file under ``folder`` at ``prefix/<relative path>``; returns keys."""
        prefix = prefix.strip("/")
        keys: list[str] = []
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(folder).as_posix()
                key = f"{prefix}/{relative}" if prefix else relative
                self.upload(bucket, key, path.read_bytes())
                keys.append(key)
        return keys

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted (all pages)."""
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def get(self, bucket: str, key: str) -> bytes:
        """The bytes of one object."""
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def delete_bucket(self, bucket: str) -> None:
        """Remove a bucket and everything in it (tests that share the session endpoint)."""
        for key in self.list(bucket):
            self.client.delete_object(Bucket=bucket, Key=key)
        self.client.delete_bucket(Bucket=bucket)


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/moto-api/reset-auth", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, whatever it said
    except OSError:
        return False


@contextlib.contextmanager
def running_s3(workdir: Path, *, attempts: int = 3) -> Iterator[S3Endpoint]:
    """Start ``python -m moto.server`` on 127.0.0.1 (a free port, tried again if taken in the
    meantime); yields the endpoint and stops the server on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = workdir / f"moto-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,
            )
        try:
            _wait_until(lambda url=url: _answers(url), process, log, "moto server", 60)
        except RuntimeError:
            _stop(process, 5)
            if attempt + 1 == attempts:
                raise
            continue
        try:
            yield S3Endpoint(url=url, log=log)
        finally:
            _stop(process, 10)
        return


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A real S3 endpoint on 127.0.0.1 (moto server), for the whole session."""
    reason = "needs moto's S3 server: pip install -e '.[scale-test]'"
    pytest.importorskip("boto3", reason=reason)
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        pytest.skip(reason)
    with running_s3(tmp_path_factory.mktemp("s3")) as endpoint:
        yield endpoint


# --- Ray --------------------------------------------------------------------------------------

#: Set for the cluster and for every driver that joins it: no usage reports, no token auth
#: (2.60 turns token auth on by default).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass
class RayCluster:
    """A running local Ray head. ``env`` (RAY_ADDRESS and :data:`RAY_ENV`) makes a subprocess's
    ``ray.init()`` join it."""

    address: str
    temp_dir: Path
    log: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = {"RAY_ADDRESS": self.address, **RAY_ENV}

    def child_env(self, *more: Mapping[str, str]) -> dict[str, str]:
        """This process's environment, cleaned (see :func:`child_env`), plus :attr:`env`."""
        return child_env(self.env, *more)


def _ray_executable() -> str:
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise RuntimeError("the ray command is not installed next to this Python")
    return found


@contextlib.contextmanager
def running_ray(
    workdir: Path,
    *,
    num_cpus: int = 4,
    object_store_memory: int = 128 * 1024**2,
    env: Mapping[str, str] | None = None,
) -> Iterator[RayCluster]:
    """``ray start --head --block`` with its own temporary folder (short: Ray's socket paths
    must stay under 107 characters) and its own ports. It is stopped by SIGTERM to that
    process, which takes down this node's processes only (``ray stop`` would stop every Ray on
    the machine), then SIGKILL to its process group. ``env`` is added to the head's environment
    (its workers inherit it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    port = free_port()
    log = workdir / f"ray-head-{port}.log"
    options = {
        "--node-ip-address": "127.0.0.1",
        "--port": str(port),
        "--num-cpus": str(num_cpus),
        "--object-store-memory": str(object_store_memory),
        "--include-dashboard": "false",
        "--temp-dir": str(temp_dir),
        # A fixed default port taken by another Ray would fail the start: all our own. (No
        # --ray-client-server-port: without ray[client] installed, naming it is an error.)
        **{
            flag: str(free_port())
            for flag in (
                "--dashboard-agent-listen-port",
                "--dashboard-agent-grpc-port",
                "--metrics-export-port",
                "--runtime-env-agent-port",
                "--node-manager-port",
                "--object-manager-port",
            )
        },
    }
    command = [_ray_executable(), "start", "--head", "--block", "--disable-usage-stats"]
    command += [part for option in options.items() for part in option]
    # No drain on SIGTERM: 2.60 otherwise waits up to 30 s for Serve proxies that are not there.
    head_env = child_env(RAY_ENV, {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}, env or {})
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=head_env,
            start_new_session=True,
        )
    try:
        # `ray start` writes the address file once the head is up, just before it blocks.
        written = temp_dir / "ray_current_cluster"
        _wait_until(written.exists, process, log, "ray start --head", 120)
        yield RayCluster(address=f"127.0.0.1:{port}", temp_dir=temp_dir, log=log)
    finally:
        _stop(process, 30)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(
    tmp_path_factory: pytest.TempPathFactory, s3_endpoint: S3Endpoint
) -> Iterator[RayCluster]:
    """A local Ray head (4 logical CPUs, 128 MiB object store, no dashboard) for the session,
    its node given the S3 endpoint's environment, as a real cluster's nodes hold their store's
    credentials. Tests run their Ray drivers as subprocesses with ``ray_cluster.child_env()``."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("needs Ray Data: pip install -e '.[ray]'")
    with running_ray(tmp_path_factory.mktemp("ray"), env=s3_endpoint.env) as cluster:
        yield cluster
