"""deploy/: the Kubernetes manifests and Dockerfiles, checked against babelcap itself.

Nothing here talks to a cluster or builds an image. The manifests are parsed with PyYAML, the
commands in them with babelcap's own argument parsers (a renamed flag breaks a test), the probe
paths are asked of the real gateway app, and the versions are compared with pyproject.toml.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from babelcap.cli import _parser
from babelcap.client.config import CaptionSettings
from babelcap.core.settings import settings_from_args
from babelcap.server.gateway import GatewayConfig, create_gateway
from babelcap.server.profiles import BUILTIN_PROFILES
from babelcap.server.settings import ServeSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
#: What deploy/ may hold, each kind with its one apiVersion. No Secret: credentials are made
#: with `kubectl create secret` (docs/scale-out.md), never committed.
KINDS = {
    "Service": "v1",
    "StatefulSet": "apps/v1",
    "Deployment": "apps/v1",
    "RayJob": "ray.io/v1",
}
#: Environment variables that carry a credential: they must come from a Secret.
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)
#: Literal credentials that must never appear in deploy/: AWS access key ids, Hugging Face tokens,
#: OpenSSH/PEM private keys.
LITERAL_SECRET = re.compile(r"AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{30,}|-----BEGIN [A-Z ]*PRIVATE KEY")

Doc = dict[str, Any]


# --- reading deploy/ --------------------------------------------------------------------------


def _manifests() -> list[tuple[Path, Doc]]:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert files, "no manifests under deploy/"
    found = []
    for path in files:
        with path.open(encoding="utf-8") as stream:
            found += [(path, doc) for doc in yaml.safe_load_all(stream) if doc is not None]
    return found


def _docs() -> list[Doc]:
    return [doc for _, doc in _manifests()]


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def _servers(docs: list[Doc]) -> Doc:
    """The GPU servers' workload: the StatefulSet (or Deployment) that runs `babelcap serve`."""
    workloads = [
        d
        for d in docs
        if d["kind"] in ("StatefulSet", "Deployment")
        and any(c.get("command", [])[:2] == ["babelcap", "serve"] for c in _containers(d))
    ]
    assert len(workloads) == 1, "expected one workload running `babelcap serve`"
    return workloads[0]


def _containers(workload: Doc) -> list[Doc]:
    return list(workload["spec"]["template"]["spec"].get("containers", []))


def _serve_container(docs: list[Doc]) -> Doc:
    (container,) = [
        c for c in _containers(_servers(docs)) if c.get("command", [])[:2] == ["babelcap", "serve"]
    ]
    return container


def _ray_pod_specs(job: Doc) -> Iterator[Doc]:
    cluster = job["spec"]["rayClusterSpec"]
    yield cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["template"]["spec"]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _pyproject_pin(extra: str, package: str) -> str:
    """The exact version an extra of pyproject.toml pins a package to (``ray[data]==2.60.0``)."""
    with (ROOT / "pyproject.toml").open("rb") as stream:
        requirements = tomllib.load(stream)["project"]["optional-dependencies"][extra]
    for requirement in requirements:
        match = re.fullmatch(rf"{re.escape(package)}(\[[^\]]*\])?==([\w.]+)", requirement)
        if match:
            return match.group(2)
    raise AssertionError(f"pyproject.toml's {extra} extra pins no {package}")


# --- babelcap's own parsers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_babelcap_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read BABELCAP_* variables too: only the manifests may decide here."""
    for name in list(os.environ):
        if name.startswith("BABELCAP_"):
            monkeypatch.delenv(name)


def _parse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    try:
        return _parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"babelcap refuses {shlex.join(argv)!r}: {capsys.readouterr().err.strip()}")


def _caption(entrypoint: str, capsys: pytest.CaptureFixture[str]) -> tuple[Any, CaptionSettings]:
    """A RayJob entrypoint as `babelcap caption` reads it: its parsed arguments and settings."""
    tokens = shlex.split(entrypoint)
    assert tokens[:2] == ["babelcap", "caption"], (
        f"the entrypoint is not babelcap caption: {tokens}"
    )
    args = _parse(["caption", *tokens[2:]], capsys)
    return args, settings_from_args(args, CaptionSettings)


def _serve(container: Doc, capsys: pytest.CaptureFixture[str]) -> ServeSettings:
    argv = [str(arg) for arg in [*container["command"][1:], *container.get("args", [])]]
    return settings_from_args(_parse(argv, capsys), ServeSettings)


async def _get(path: str) -> int:
    """The status the real gateway app answers a GET of ``path`` with, sent without a key while
    a key is required (as a kubelet probe sends it)."""
    app = create_gateway([], GatewayConfig(api_key="a-key-the-probe-does-not-send"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pod") as client:
        return (await client.get(path)).status_code


def _port_number(container: Doc, port: int | str) -> int:
    """A probe's or a Service's target port (a number or a container port's name) as a number;
    fails when the container does not declare it."""
    for declared in container.get("ports", []):
        if port in (declared["containerPort"], declared.get("name")):
            return int(declared["containerPort"])
    raise AssertionError(f"container {container['name']} declares no port {port!r}")


# --- the manifests as a whole -----------------------------------------------------------------


def test_every_manifest_parses_and_is_a_kind_deploy_should_hold():
    manifests = _manifests()
    for path, doc in manifests:
        where = f"{path.relative_to(ROOT)}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert doc.get("kind") in KINDS, f"{where}: unexpected kind"
        assert doc.get("apiVersion") == KINDS[doc["kind"]], f"{where}: apiVersion"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), where
    kinds = sorted(doc["kind"] for _, doc in manifests)
    assert kinds.count("RayJob") == 1 and kinds.count("Service") >= 1


def _inline_credentials(manifest: Any) -> list[str]:
    """The environment entries that name a credential but do not take it from a Secret."""
    return [
        str(node["name"])
        for node in _walk(manifest)
        if isinstance(node, dict)
        and ("value" in node or "valueFrom" in node)
        and SECRET_NAME.search(str(node.get("name", "")))
        and ("value" in node or "secretKeyRef" not in node["valueFrom"])
    ]


def test_credentials_are_referenced_from_secrets_never_written_down():
    for path, doc in _manifests():
        assert not _inline_credentials(doc), f"{path.name}: not from a Secret"
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        assert not LITERAL_SECRET.search(text), f"{path.relative_to(ROOT)} holds a credential"
        assert "--api-key" not in text, f"{path.relative_to(ROOT)}: a key on a command line"


def test_the_credential_check_catches_a_key_written_inline_or_from_a_config_map():
    env = [
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "x"},
        {"name": "BABELCAP_API_KEY", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "AWS_REGION", "value": "us-east-1"},
    ]
    assert _inline_credentials({"env": env}) == ["AWS_SECRET_ACCESS_KEY", "BABELCAP_API_KEY"]
    assert LITERAL_SECRET.search("key: AKIA" + "ABCDEFGHIJKLMNOP")


# --- the GPU servers --------------------------------------------------------------------------


def test_the_server_command_parses_with_babelcap_serve_and_listens_beyond_loopback(capsys):
    docs = _docs()
    container = _serve_container(docs)
    settings = _serve(container, capsys)
    assert settings.host == "0.0.0.0", "serve binds 127.0.0.1 unless told: no probe reaches it"
    assert settings.port == _port_number(container, "http")
    assert settings.profile in BUILTIN_PROFILES, f"{settings.profile} is not a GPU profile"
    assert settings.config is None and settings.api_key is None
    # The key comes from a Secret through the variable ServeSettings reads.
    variable = f"{ServeSettings.model_config.get('env_prefix')}API_KEY"
    (entry,) = [e for e in container.get("env", []) if e["name"] == variable]
    assert entry["valueFrom"]["secretKeyRef"]["name"]


def test_the_init_container_pulls_the_profile_that_is_served(capsys):
    docs = _docs()
    spec = _servers(docs)["spec"]["template"]["spec"]
    served = _serve(_serve_container(docs), capsys).profile
    pulls = [
        c
        for c in spec.get("initContainers", [])
        if c["command"][:3] == ["babelcap", "models", "pull"]
    ]
    for pull in pulls:
        args = _parse([str(a) for a in [*pull["command"][1:], *pull.get("args", [])]], capsys)
        assert args.profile == served
        assert pull["image"] == _serve_container(docs)["image"]


def test_each_server_pod_has_one_gpu():
    container = _serve_container(_docs())
    limits = container["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) == 1
    requested = container["resources"].get("requests", {}).get("nvidia.com/gpu")
    assert requested is None or int(requested) == int(limits["nvidia.com/gpu"])


def test_every_probe_asks_a_path_the_gateway_answers_without_a_key():
    container = _serve_container(_docs())
    kinds = ("startupProbe", "readinessProbe", "livenessProbe")
    assert all(container.get(k) for k in kinds), (
        f"missing: {[k for k in kinds if k not in container]}"
    )
    probes: dict[str, Doc] = {kind: container[kind] for kind in kinds}
    for kind, probe in probes.items():
        path, port = probe["httpGet"]["path"], probe["httpGet"]["port"]
        assert _port_number(container, port) == _port_number(container, "http"), kind
        # No backend at all counts as every backend ready: 200 with the real route, 404 without.
        assert asyncio.run(_get(path)) == 200, f"{kind}: GET {path} is not a served health path"


def test_the_probe_check_fails_for_a_path_the_gateway_does_not_serve():
    assert asyncio.run(_get("/healthz")) != 200
    assert asyncio.run(_get("/v1/models")) == 401  # a real route, but it needs the key


def test_the_services_select_the_server_pods_and_reach_their_port():
    docs = _docs()
    workload = _servers(docs)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container = _serve_container(docs)
    services = [d for d in docs if d["kind"] == "Service"]
    assert services, "no Service in front of the servers"
    for service in services:
        name = service["metadata"]["name"]
        selector = service["spec"].get("selector") or {}
        assert selector and selector.items() <= labels.items(), f"{name} selects no server pod"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert _port_number(container, target) == _port_number(container, "http"), name
    if workload["kind"] == "StatefulSet":
        headless = _one(docs, "Service", workload["spec"]["serviceName"])
        assert headless["spec"].get("clusterIP") == "None", "per-pod DNS needs a headless Service"


# --- the caption job --------------------------------------------------------------------------


def test_the_rayjob_entrypoint_is_a_babelcap_caption_command_babelcap_accepts(capsys):
    job = _one(_docs(), "RayJob")
    args, settings = _caption(job["spec"]["entrypoint"], capsys)
    assert settings.engine == "ray"
    assert settings.ray_address == "auto", "the driver runs on the RayJob's own cluster"
    assert settings.resume and not settings.overwrite, "a retried or re-applied job must resume"
    assert urlsplit(settings.output).scheme in ("s3", "gs"), settings.output
    assert args.paths and all(urlsplit(p).scheme in ("s3", "gs") for p in args.paths)
    assert settings.api_key is None, "the server key comes from BABELCAP_API_KEY, a Secret"


def test_the_entrypoint_check_fails_on_a_flag_babelcap_does_not_have(capsys):
    job = _one(_docs(), "RayJob")
    renamed = job["spec"]["entrypoint"].replace("--ray-address", "--ray-cluster")
    with pytest.raises(pytest.fail.Exception, match="babelcap refuses"):
        _caption(renamed, capsys)


def test_the_job_names_every_server_pod_once(capsys):
    docs = _docs()
    _, settings = _caption(_one(docs, "RayJob")["spec"]["entrypoint"], capsys)
    workload = _servers(docs)
    assert workload["kind"] == "StatefulSet", "only a StatefulSet's pods have names a job can list"
    name, service = workload["metadata"]["name"], workload["spec"]["serviceName"]
    port = _one(docs, "Service", service)["spec"]["ports"][0]["port"]
    expected = {f"{name}-{i}.{service}" for i in range(int(workload["spec"]["replicas"]))}
    # pod.service (the job's own namespace), or pod.service.namespace.svc.cluster.local
    hosts = [".".join((urlsplit(url).hostname or "").split(".")[:2]) for url in settings.server]
    assert set(hosts) == expected, "one --server per server pod, by its stable name"
    assert len(hosts) == len(expected), "a server named twice gets twice the requests"
    assert {urlsplit(url).port for url in settings.server} == {port}


def test_the_ray_cluster_runs_the_pinned_ray_in_one_image_with_the_credentials_everywhere():
    job = _one(_docs(), "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True, "an idle cluster left behind costs money"
    assert spec["rayClusterSpec"]["rayVersion"] == _pyproject_pin("ray", "ray")
    containers = [c for pod in _ray_pod_specs(job) for c in pod["containers"]]
    assert len({c["image"] for c in containers}) == 1, "head and workers must run the same Ray"
    environments = [{e["name"]: e for e in c.get("env", [])} for c in containers]
    for env in environments:
        # Workers read the bucket and send the requests: they need what the head has.
        assert env == environments[0]
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BABELCAP_API_KEY"):
            assert "secretKeyRef" in env[variable]["valueFrom"], variable
    for container in containers:
        resources = container["resources"]
        assert resources["requests"]["cpu"] is not None and resources["limits"]["memory"]
        assert "nvidia.com/gpu" not in resources["limits"], "the caption side needs no GPU"
    assert spec["rayClusterSpec"]["workerGroupSpecs"], "no CPU workers to decode on"


def test_the_dockerfiles_install_the_versions_babelcap_pins():
    client = (DEPLOY / "docker" / "Dockerfile.client").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", client, re.MULTILINE)
    assert "[ray]" in client
    assert f"ray[default]=={_pyproject_pin('ray', 'ray')}" in client
    assert re.search(r"\bwget\b", client), "KubeRay's probes run wget in every Ray container"
    server = (DEPLOY / "docker" / "Dockerfile.server").read_text(encoding="utf-8")
    assert re.search(
        rf"^FROM vllm/vllm-openai:v{re.escape(_pyproject_pin('gpu', 'vllm'))}$",
        server,
        re.MULTILINE,
    )
    assert "[gpu,server,translate]" in server
