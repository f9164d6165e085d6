"""Settings: declared once, loaded from defaults < env file < environment < flags."""

from __future__ import annotations

import logging

import pytest

from appliance.errors import ConfigError
from appliance.settings import load_settings


def test_precedence_and_sources(tmp_path):
    (tmp_path / "ovation.env").write_text(
        "# comment\nOVATION_APPLAUSE_CAP=20\nOVATION_FLUSH_INTERVAL_S='2.5'\n"
        "OVATION_VIEW_WINDOW_S=10\n")
    loaded = load_settings({"view_window_s": 99, "bind": None},
                           {"OVATION_DATA_DIR": str(tmp_path), "OVATION_FLUSH_INTERVAL_S": "3"})
    assert loaded.settings.applause_cap == 20
    assert loaded.sources["applause_cap"].startswith("env file")
    assert loaded.settings.flush_interval_s == 3.0
    assert loaded.sources["flush_interval_s"] == "environment"
    assert loaded.settings.view_window_s == 99
    assert loaded.sources["view_window_s"] == "command line"
    assert loaded.sources["bind"] == "default"  # a flag not given overrides nothing


def test_derived_values(tmp_path):
    settings = load_settings({"data_dir": tmp_path}, {}).settings
    assert settings.owns_redis
    assert settings.effective_redis_url == f"unix://{tmp_path}/redis/redis.sock"
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/ovation.db"
    assert settings.effective_public_url == "http://127.0.0.1:8700"


@pytest.mark.parametrize(("variable", "value", "fragment"), [
    ("OVATION_FLUSH_INTERVAL_S", "soon", "OVATION_FLUSH_INTERVAL_S='soon'"),
    ("OVATION_FLUSH_INTERVAL_S", "0", "greater than 0"),
    ("OVATION_BIND", "8700", "HOST:PORT"),
    ("OVATION_DATABASE_URL", "mysql://x", "sqlite:// or postgresql://"),
    ("OVATION_REDIS_URL", "localhost:6379", "'owned'"),
    ("OVATION_LOG_LEVEL", "loud", "OVATION_LOG_LEVEL"),
])
def test_bad_values_stop_with_one_clear_line(tmp_path, variable, value, fragment):
    with pytest.raises(ConfigError) as error:
        load_settings({}, {"OVATION_DATA_DIR": str(tmp_path), variable: value})
    assert fragment in error.value.message
    assert "\n" not in error.value.message


def test_unknown_keys_warn_and_do_not_stop(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        load_settings({}, {"OVATION_DATA_DIR": str(tmp_path), "OVATION_FLUSH_INTERVAL": "3"})
    assert "unknown setting OVATION_FLUSH_INTERVAL" in caplog.text


def test_env_file_errors_are_clear(tmp_path):
    (tmp_path / "ovation.env").write_text("OVATION_APPLAUSE_CAP\n")
    with pytest.raises(ConfigError, match="ovation.env:1: expected KEY=VALUE"):
        load_settings({}, {"OVATION_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="no such file"):
        load_settings({}, {"OVATION_ENV_FILE": str(tmp_path / "missing.env")})


def test_secret_key_is_generated_once_and_kept_private(tmp_path):
    settings = load_settings({"data_dir": tmp_path}, {}).settings
    key = settings.hashing_key()
    assert key == settings.hashing_key() and len(key) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
