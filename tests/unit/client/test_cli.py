"""The babelcap command: discoverable help, clear failures."""

from __future__ import annotations

import subprocess
import sys


def _babelcap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "babelcap", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_subcommand():
    result = _babelcap("--help")
    assert result.returncode == 0
    for command in ("demo", "tiny", "convert", "translate", "translation-server"):
        assert command in result.stdout


def test_tiny_check_passes_on_the_committed_models():
    result = _babelcap("tiny", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mllama: ok" in result.stdout and "nllb-ct2: ok" in result.stdout


def test_demo_names_missing_media_and_starts_nothing(tmp_path):
    missing = tmp_path / "nowhere"
    result = _babelcap("demo", str(missing), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2
    assert f"not found: {missing}" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_translate_reports_an_unreachable_server_with_the_fix():
    result = _babelcap("translate", "Hello.", "--to", "fr", "--server", "http://127.0.0.1:9")
    assert result.returncode == 3  # no server answered (2 is for bad settings)
    assert "no babelcap server answered at http://127.0.0.1:9" in result.stderr
    assert "--model DIR" in result.stderr
