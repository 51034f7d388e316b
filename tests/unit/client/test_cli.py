"""The babelcap command: discoverable help, clear failures."""

from __future__ import annotations

import subprocess
import sys

import pytest

from babelcap.benchmarks.synthetic import write_image
from babelcap.cli import main
from tests.unit.client.fakes import FakeBabelcap


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


# Every caption flag a user can get wrong, with a wrong value: (argv, what the line must name).
_MISTAKES = [
    (["--server", "localhost:8000"], "--server"),
    (["--server", ""], "--server"),
    (["--tasks", "nope"], "unknown task(s) nope"),
    (["--tasks", ""], "unknown task(s) (none given)"),
    (["--translate", "ad", "--tasks", "description"], "--translate ad"),
    (["--translate", "tags"], "--translate tags"),
    (["--prompts", "{tmp}/none.toml"], "none.toml does not exist"),
    (["--output", "{tmp}"], "--output"),
    (["--output", "{tmp}/file.txt/r.jsonl"], "--output"),
    (["--resume", "--overwrite"], "--resume and --overwrite"),
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "lots"], "--concurrency"),
    (["--concurrency"], "--concurrency"),
    (["--frames", "0"], "--frames"),
    (["--frames", "500"], "--frames"),
    (["--temperature", "3"], "--temperature"),
    (["--max-tokens", "0"], "--max-tokens"),
    (["--media-workers", "0"], "--media-workers"),
    (["--decode-timeout-s", "0"], "--decode-timeout-s"),
    (["--decode-timeout-s", "nan"], "--decode-timeout-s"),
    (["--max-pixels", "-5"], "--max-pixels"),
    (["--jpeg-quality", "10"], "--jpeg-quality"),
    (["--request-timeout-s", "-1"], "--request-timeout-s"),
    (["--max-retries", "-1"], "--max-retries"),
    (["--unavailable-timeout-s", "0"], "--unavailable-timeout-s"),
    (["--files-from", "{tmp}/missing.txt"], "--files-from"),
    (["--files-from", "{tmp}"], "--files-from"),
    (["--languages", "xx_Bad"], "--languages"),
    (["--image-model", "nope"], "--image-model 'nope'"),
    (["--video-model", "nope"], "--video-model 'nope'"),
    (["--bogus"], "--bogus"),
    (["--engine", "spark"], "--engine"),
    (["--engine", "ray"], "--engine ray writes shards"),
    (["--ray-address", "nohost", "--engine", "ray", "--output", "{tmp}/shards/"], "--ray-address"),
    (["--ray-cpus", "0"], "--ray-cpus"),
    (["--shard-records", "0"], "--shard-records"),
]
_NEVER_WRONG = {"api_key", "include_hidden", "quiet", "resume", "overwrite"}  # any value goes


@pytest.fixture(scope="module")
def fake_server():
    with FakeBabelcap(languages={"fra_Latn", "spa_Latn", "hin_Deva"}) as server:
        yield server


def test_every_caption_flag_has_a_mistake_tested():
    from babelcap.client.config import CaptionSettings

    tested = {argv[0].removeprefix("--").replace("-", "_") for argv, _ in _MISTAKES}
    assert set(CaptionSettings.model_fields) - _NEVER_WRONG <= tested


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "named"), _MISTAKES, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_a_caption_mistake_is_one_line_and_exit_2(tmp_path, capsys, fake_server, argv, named):
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    media = write_image(tmp_path / "a.png", (8, 8), format="PNG")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = tmp_path / "out" / "r.jsonl"
    server = [] if "--server" in argv else ["--server", fake_server.url]  # a repeatable flag
    args = ["caption", str(media), *server, "--output", str(out), "--quiet",
            *argv]  # later flags win: the mistakes above override these  # fmt: skip
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if "babelcap" in line or line.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in stderr, stderr
    assert named in lines[0]
    assert not out.exists()  # nothing written


def test_a_caption_mistake_in_the_environment_names_the_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BABELCAP_CONCURRENCY", "lots")
    code = main(["caption", str(tmp_path), "--output", str(tmp_path / "r.jsonl")])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1 and "--concurrency" in stderr


def test_a_missing_files_from_list_is_one_line_not_a_traceback(tmp_path):
    result = _babelcap("caption", "--files-from", str(tmp_path / "list.txt"), "--output",
                       str(tmp_path / "r.jsonl"))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"babelcap caption: error: --files-from {tmp_path / 'list.txt'} does not exist; give a "
        "text file with one path a line\n"
    )
