"""`babelcap models pull` and NLLB converted once into babelcap's cache, with no network: a
pre-filled Hugging Face cache, and for downloads a real local HTTP server speaking the hub's
protocol (HF_ENDPOINT) that huggingface_hub's own download code talks to."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from babelcap.core.errors import EXIT_SETTINGS, EXIT_UNAVAILABLE
from babelcap.server import hub
from babelcap.server.hub import resolve
from babelcap.server.translation.convert import MANIFEST, nllb_ct2_folder
from tests.hub_fixtures import TEST_IDS, commit_of, fill_cache

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_babelcapTestTokenNeverPrinted"


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """An empty Hugging Face home and babelcap cache, set for this process and its children."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("BABELCAP_CACHE", str(tmp_path / "babelcap"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _profile(tmp_path: Path, models: dict[str, str], translator: str | None) -> Path:
    """A JSON profile naming hub ids."""
    profile = {
        "name": "hub-test",
        "models": [
            {"role": role, "backend": {"name": f"test-{role}", "model": ref}}
            for role, ref in models.items()
        ],
        "translation": {"model": translator, "name": "test-nllb"} if translator else None,
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile), encoding="utf-8")
    return path


def _pull(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "babelcap", "models", "pull", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", **env},
    )  # fmt: skip


def _translate(folder: Path) -> str:
    from babelcap.server.translation import TranslationEngine, TranslationSettings

    async def run() -> str:
        engine = TranslationEngine(TranslationSettings(model=folder))
        try:
            result = await engine.translate(["A small dog is sleeping in the park."], ["fra_Latn"])
        finally:
            await engine.aclose()
        return result.texts["fra_Latn"][0]

    return asyncio.run(run())


def test_nllb_is_converted_once_into_the_cache_and_translates(hub_env, artifacts):
    fill_cache(hub_env / "hf" / "hub", TEST_IDS["nllb"], artifacts / "nllb")
    folder = nllb_ct2_folder(TEST_IDS["nllb"])
    key = f"babelcap-test--tiny-nllb--{commit_of(TEST_IDS['nllb'])}--int8"
    assert folder == hub_env / "babelcap" / "ct2" / key
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["source_model"] == TEST_IDS["nllb"]
    assert manifest["revision"] == commit_of(TEST_IDS["nllb"])
    written = (folder / "model.bin").stat().st_mtime_ns

    assert nllb_ct2_folder(TEST_IDS["nllb"]) == folder
    assert hub.nllb_ct2_folder(TEST_IDS["nllb"], "int8") == folder  # serve's entry point
    assert (folder / "model.bin").stat().st_mtime_ns == written
    assert [p.name for p in folder.parent.iterdir()] == [key]  # no temporary folder left
    assert _translate(folder) == "Un petit chien dort dans le parc."
    # Another compute type is another conversion; a CTranslate2 folder is used as it is.
    assert nllb_ct2_folder(TEST_IDS["nllb"], "float32").name.endswith("--float32")
    assert nllb_ct2_folder(artifacts / "nllb-ct2") == artifacts / "nllb-ct2"


def test_offline_pull_reports_every_cached_model_present(hub_env, artifacts):
    for name, repo_id in TEST_IDS.items():
        fill_cache(hub_env / "hf" / "hub", repo_id, artifacts / name)
    profile = _profile(
        hub_env,
        {"image": TEST_IDS["mllama"], "video": TEST_IDS["llava-next-video"]},
        TEST_IDS["nllb"],
    )
    result = _pull(str(profile))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for repo_id in TEST_IDS.values():
        assert any(line.split()[:2] == ["present", repo_id] for line in lines), result.stdout
    assert "CTranslate2 folder" in result.stdout
    assert any((hub_env / "babelcap" / "ct2").glob(f"*--{commit_of(TEST_IDS['nllb'])}--int8"))


def test_offline_pull_of_a_missing_model_names_it(hub_env):
    profile = _profile(hub_env, {"image": "babelcap-test/never-pulled"}, None)
    result = _pull(str(profile))
    assert result.returncode == EXIT_SETTINGS
    assert "'babelcap-test/never-pulled' is not in the Hugging Face cache" in result.stderr
    assert "HF_HUB_OFFLINE=1" in result.stderr
    assert "Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_pull_from_an_unreachable_hub_is_a_clear_error(hub_env):
    profile = _profile(hub_env, {"image": TEST_IDS["mllama"]}, None)
    result = _pull(
        str(profile),
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
    )
    assert result.returncode == EXIT_UNAVAILABLE
    assert "cannot reach the Hugging Face hub at http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


class _Hub(BaseHTTPRequestHandler):
    """The part of the hub's API huggingface_hub's snapshot_download uses: repository info with
    file sizes, and HEAD/GET of each file at a commit; gated repositories answer 401."""

    repos: ClassVar[dict[str, Path]] = {}
    gated: ClassVar[set[str]] = set()
    fetched: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _refuse_gated(self, repo_id: str) -> bool:
        if repo_id not in self.gated:
            return False
        body = json.dumps({"error": f"Access to model {repo_id} is restricted."}).encode()
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return True

    def _file(self, head: bool) -> None:
        # /<org>/<name>/resolve/<revision>/<file>
        org, name, _, _, filename = self.path.split("?")[0].lstrip("/").split("/", 4)
        repo_id = f"{org}/{name}"
        if self._refuse_gated(repo_id):
            return
        data = (self.repos[repo_id] / filename).read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", commit_of(repo_id))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.fetched.append(f"{repo_id}/{filename}")
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._file(head=True)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if not path.startswith("/api/models/"):
            self._file(head=False)
            return
        repo_id = "/".join(path.removeprefix("/api/models/").split("/")[:2])
        if self._refuse_gated(repo_id):
            return
        folder = self.repos[repo_id]
        files = [*sorted(p.name for p in folder.iterdir()), "pytorch_model.bin"]
        info = {
            "id": repo_id,
            "sha": commit_of(repo_id),
            "siblings": [
                {
                    "rfilename": f,
                    "size": (folder / f).stat().st_size if f in os.listdir(folder) else 10**9,
                }
                for f in files
            ],
        }
        body = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake_hub(artifacts) -> Iterator[str]:
    """A hub on 127.0.0.1 holding the mllama stand-in, and a gated repository."""
    _Hub.repos = {
        TEST_IDS["mllama"]: artifacts / "mllama",
        "babelcap-test/gated": artifacts / "mllama",
    }
    _Hub.gated = {"babelcap-test/gated"}
    _Hub.fetched = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pull_downloads_into_the_cache_then_resolves_offline(hub_env, fake_hub, artifacts):
    profile = _profile(hub_env, {"image": TEST_IDS["mllama"]}, None)
    online = {
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_ENDPOINT": fake_hub,
        "HF_TOKEN": SECRET,
    }

    dry = _pull(str(profile), "--dry-run", **online)
    assert dry.returncode == 0, dry.stderr
    assert "would-download" in dry.stdout and _Hub.fetched == []

    first = _pull(str(profile), **online)
    assert first.returncode == 0, first.stderr
    assert f"downloaded  {TEST_IDS['mllama']}" in first.stdout
    # Every file vLLM reads, and not the PyTorch duplicate of the safetensors.
    assert "pytorch_model.bin" not in " ".join(_Hub.fetched)
    resolved = resolve(TEST_IDS["mllama"])
    expected = {p.name for p in (artifacts / "mllama").iterdir()}
    assert {p.name for p in resolved.path.iterdir()} == expected
    assert (resolved.path / "model.safetensors").read_bytes() == (
        artifacts / "mllama" / "model.safetensors"
    ).read_bytes()

    fetched = len(_Hub.fetched)
    again = _pull(str(profile), **online)
    assert again.returncode == 0, again.stderr
    assert f"present  {TEST_IDS['mllama']}" in again.stdout
    assert len(_Hub.fetched) == fetched  # nothing downloaded twice
    assert SECRET not in first.stdout + first.stderr + again.stdout + again.stderr


def test_a_gated_model_without_access_names_its_licence_page(hub_env, fake_hub):
    profile = _profile(hub_env, {"image": "babelcap-test/gated"}, None)
    env = {
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_ENDPOINT": fake_hub,
        "HF_TOKEN": "",
    }
    result = _pull(str(profile), **env)
    assert result.returncode == EXIT_SETTINGS, result.stderr
    assert "babelcap-test/gated is a gated model and no token is set" in result.stderr
    assert "https://huggingface.co/babelcap-test/gated" in result.stderr
    assert "Traceback" not in result.stderr

    with_token = _pull(str(profile), **{**env, "HF_TOKEN": SECRET})
    assert "the token in HF_TOKEN has no access" in with_token.stderr
    assert SECRET not in with_token.stdout + with_token.stderr
