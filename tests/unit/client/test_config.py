"""Caption settings: flags, environment variables and defaults, with the CLI built from them."""

from __future__ import annotations

import pytest

from babelcap.cli import _parser
from babelcap.client.config import CaptionSettings
from babelcap.core.errors import ConfigurationError
from babelcap.core.settings import settings_from_args


def _settings(argv):
    return settings_from_args(_parser().parse_args(["caption", *argv]), CaptionSettings)


def test_flags_win_over_environment_which_wins_over_defaults(monkeypatch):
    monkeypatch.setenv("BABELCAP_CONCURRENCY", "32")
    monkeypatch.setenv("BABELCAP_LANGUAGES", "deu_Latn,it")
    monkeypatch.setenv("BABELCAP_API_KEY", "secret-123")
    settings = _settings(["x", "--languages", "fra_Latn", "--server", "http://a:1",
                          "--server", "http://b:2,http://c:3"])  # fmt: skip
    assert settings.concurrency == 32
    assert settings.languages == ["fra_Latn"]
    assert settings.server == ["http://a:1", "http://b:2", "http://c:3"]
    assert settings.api_key is not None and "secret-123" not in repr(settings)  # never shown
    assert _settings(["x"]).languages == ["deu_Latn", "it"]


def test_defaults():
    settings = CaptionSettings()
    assert settings.tasks == ["description", "tags", "sentiment", "ad"]
    assert settings.translate == ["description"]
    assert settings.server == ["http://127.0.0.1:8000"]


def test_empty_languages_means_no_translation():
    assert _settings(["x", "--languages", ""]).languages == []


def test_invalid_values_name_the_field():
    with pytest.raises(ConfigurationError, match="--concurrency: Input should be greater"):
        _settings(["x", "--concurrency", "0"])


def test_every_field_has_help():
    help_text = _parser()._subparsers._group_actions[0].choices["caption"].format_help()
    for name, field in CaptionSettings.model_fields.items():
        assert field.description, name
        assert "--" + name.replace("_", "-") in help_text
