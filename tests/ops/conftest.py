"""Helpers for the operations tests: run `platformctl` in-process with given settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli.main
from appliance.settings import Settings, env_var

SAMPLES = Path(__file__).parent / "samples"


def settings_environment(settings: Settings) -> dict[str, str]:
    return {env_var(name): str(getattr(settings, name)) for name in type(settings).model_fields}


@pytest.fixture
def platformctl(settings, monkeypatch):
    """Invoke `platformctl ARGS` in-process with the test's settings in the environment."""
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OVATION_ENV_FILE", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli.main.app, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def isso_database(tmp_path) -> Path:
    path = tmp_path / "comments.db"
    with sqlite3.connect(path) as db:
        db.executescript((SAMPLES / "isso.sql").read_text())
    db.close()
    return path
