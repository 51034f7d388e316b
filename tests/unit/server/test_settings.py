"""`babelcap serve` and `babelcap translation-server` flags, built from their settings models."""

from __future__ import annotations

from pathlib import Path

import pytest

from babelcap.cli import _parser
from babelcap.core.errors import ConfigurationError
from babelcap.core.settings import settings_from_args
from babelcap.server.settings import ServeSettings, TranslationServerSettings


def _serve(*argv: str) -> ServeSettings:
    return settings_from_args(_parser().parse_args(["serve", *argv]), ServeSettings)


def test_serve_defaults_match_the_documented_ones(monkeypatch):
    monkeypatch.delenv("BABELCAP_API_KEY", raising=False)
    settings = _serve()
    assert (settings.profile, settings.config, settings.host, settings.port) == (
        None, None, "127.0.0.1", 8000,
    )  # fmt: skip
    assert settings.log_dir == Path("out/logs") and settings.api_key is None


def test_profile_and_config_are_exclusive_with_a_clear_error():
    with pytest.raises(ConfigurationError, match=r"--config.*--profile or a --config file, not"):
        _serve("--profile", "tiny-cpu", "--config", "mine.json")


def test_the_api_key_comes_from_the_environment_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("BABELCAP_API_KEY", "s3cret")
    settings = _serve()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert _serve("--api-key", "flag").api_key.get_secret_value() == "flag"


def test_serve_help_lists_every_builtin_profile(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["serve", "--help"])
    shown = "".join(capsys.readouterr().out.split())  # argparse wraps at hyphens
    for name in ("tiny-cpu", "tiny-cpu-bf16", "h100-80gb", "llama-vision-bf16"):
        assert name in shown
    assert "BABELCAP_API_KEY" in shown


def test_translation_server_needs_a_model_and_keeps_its_port_and_limit():
    args = _parser().parse_args(["translation-server", "--model", "m", "--max-body-bytes", "9"])
    settings = settings_from_args(args, TranslationServerSettings)
    assert (settings.model, settings.port, settings.max_body_bytes) == (Path("m"), 8100, 9)
    with pytest.raises(SystemExit):
        _parser().parse_args(["translation-server"])
