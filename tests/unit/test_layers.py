"""The package's layers point one way (docs/architecture.md, "Layers"), and what gets installed
is the one package ``babelcap``."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Which layer may import which (besides itself). Read it bottom-up: core imports nothing of the
#: rest; server and client never import each other; the CLI sits on top of everything.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "prompts": {"core"},
    "server": {"core"},
    "client": {"core", "prompts"},
    "converters": {"core", "prompts", "server"},
    "benchmarks": {"core", "prompts", "server", "client", "converters"},
    "cli": {"core", "prompts", "server", "client", "converters", "benchmarks"},
}
#: The design's folders, once importable at the top level; only ``babelcap.<name>`` is allowed.
OLD_TOP_LEVEL = {"client", "server", "converters", "prompts", "benchmarks"}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "babelcap":
        return None
    return parts[1] if len(parts) > 1 else "core"  # ``import babelcap`` is the core's API


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module ``path`` imports, lazy imports inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join([*base, node.module or ""]).rstrip(".")))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def violations(package_root: Path) -> list[str]:
    """Imports under ``package_root`` (a ``babelcap`` folder) that point the wrong way."""
    problems = []
    for path in sorted(package_root.rglob("*.py")):
        relative = path.relative_to(package_root)
        parts = relative.with_suffix("").parts
        layer = parts[0] if len(parts) > 1 and parts[0] in ALLOWED else "core"
        if parts == ("__main__",):  # python -m babelcap: the command line
            layer = "cli"
        if parts[0] not in ALLOWED and len(parts) > 1:
            continue  # data folders (stand_ins) hold no code
        package = ".".join(["babelcap", *parts[:-1]])
        for line, module in _imports(path, package):
            top = module.split(".")[0]
            where = f"babelcap/{relative}:{line}"
            if top in OLD_TOP_LEVEL:
                problems.append(f"{where} imports {module}; use babelcap.{module}")
                continue
            target = _layer_of(module)
            if target is None or target == layer or target not in ALLOWED:
                continue
            if target not in ALLOWED[layer]:
                problems.append(f"{where}: {layer} imports {module} ({target})")
    return problems


def test_every_import_points_down_the_layers():
    assert violations(ROOT / "babelcap") == []


def test_the_contract_fails_when_the_server_imports_the_client(tmp_path):
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "ok.py").write_text("from babelcap.core.errors import BabelcapError\n")
    (tmp_path / "server" / "bad.py").write_text(
        "def f():\n    from babelcap.client.runner import caption\n"
    )
    (tmp_path / "core.py").write_text("import babelcap.server\n")
    (tmp_path / "client").mkdir()
    (tmp_path / "client" / "old.py").write_text("from server import profiles\n")
    assert violations(tmp_path) == [
        "babelcap/client/old.py:1 imports server; use babelcap.server",
        "babelcap/core.py:1: core imports babelcap.server (server)",
        "babelcap/server/bad.py:2: server imports babelcap.client.runner (client)",
    ]


def test_tests_and_scripts_import_babelcap_not_the_old_top_level_names():
    problems = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for line, module in _imports(path, "tests"):
            if module.split(".")[0] in OLD_TOP_LEVEL:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert problems == []


@pytest.mark.slow
def test_pip_install_puts_babelcap_alone_in_site_packages(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("babelcap-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    version = wheel.name.split("-")[1]
    assert {name.split("/")[0] for name in names} == {"babelcap", f"babelcap-{version}.dist-info"}
    # What the default (tiny-cpu) profile and the demo read at run time ships in the wheel.
    for needed in (
        "babelcap/stand_ins/mllama/model.safetensors",
        "babelcap/stand_ins/nllb-ct2/model.bin",
        "babelcap/stand_ins/nllb-ct2/sentencepiece.bpe.model",
        "babelcap/client/examples/four-colours.mp4",
        "babelcap/prompts/builtin/description.toml",
        "babelcap/server/stack/install_cpu_stack.sh",
        "babelcap/server/translation/engine.py",
        "babelcap/converters/tiny/mllama.py",
    ):
        assert needed in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    probe = (
        "import importlib.util, babelcap, babelcap.core;"
        "print(babelcap.__version__, [n for n in ('client', 'server', 'converters', 'prompts',"
        " 'benchmarks') if importlib.util.find_spec(n)])"
    )
    shown = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert shown.stdout.split(" ", 1) == ["0.1.0", "[]\n"]
    old = subprocess.run([str(python), "-c", "import server"], cwd=tmp_path, capture_output=True)
    assert old.returncode != 0
