"""`platformctl site set --rate-limit`: per-site overrides stored, shown, removed; mistakes are
one line and change nothing. Real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from appliance.storage.site_store import get_site
from cli.main import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path, redis_url, database_url, database) -> dict[str, str]:
    values = {"OVATION_DATA_DIR": str(tmp_path / "data"), "OVATION_REDIS_URL": redis_url,
              "OVATION_DATABASE_URL": database_url, "OVATION_SECRET_KEY": "k", "COLUMNS": "250"}
    assert runner.invoke(app, ["site", "add", "blog"], env=values).exit_code == 0
    return values


def site_set(env, *args: str):
    return runner.invoke(app, ["site", "set", "blog", *args], env=env)


def test_overrides_are_stored_shown_and_removed(env, database):
    result = site_set(env, "--rate-limit", "interactions_per_min=600",
                      "--rate-limit", "reads_per_min=0", "--rate-limit", "comment_rate_limit=2")
    assert result.exit_code == 0, result.output
    assert "rate limits comment_rate_limit=2, interactions_per_min=600, reads_per_min=0 " \
        "(no limit)" in result.output
    assert get_site(database, "blog").rate_limits == {
        "interactions_per_min": 600, "reads_per_min": 0, "comment_rate_limit": 2}
    listed = runner.invoke(app, ["site", "list"], env=env)
    assert "interactions_per_min=600" in listed.output and "reads_per_min=0" in listed.output

    # Other options leave the overrides alone; NAME=default removes one.
    assert site_set(env, "--title", "Blog").exit_code == 0
    assert site_set(env, "--rate-limit", "reads_per_min=default").exit_code == 0
    assert get_site(database, "blog").rate_limits == {"interactions_per_min": 600,
                                                      "comment_rate_limit": 2}


@pytest.mark.parametrize(("change", "message"), [
    ("reads=5", "Unknown rate limit 'reads'; one of: interactions_per_min,"),
    ("rate_reads_per_min=5", "Unknown rate limit 'rate_reads_per_min'"),
    ("reads_per_min", "must look like NAME=N or NAME=default"),
    ("reads_per_min=", "must look like NAME=N or NAME=default"),
    ("reads_per_min=-1", "whole number from 0 (no limit) to 1,000,000"),
    ("reads_per_min=1e3", "got '1e3'"),
    ("reads_per_min=2000000", "to 1,000,000"),
    ("comment_rate_limit=10001", "to 10,000"),
    ("admin_per_min=١٢", "got '١٢'"),
])
def test_mistakes_are_one_line_and_change_nothing(env, database, change, message):
    assert site_set(env, "--rate-limit", "admin_per_min=9").exit_code == 0
    result = site_set(env, "--rate-limit", "reads_per_min=7", "--rate-limit", change)
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert get_site(database, "blog").rate_limits == {"admin_per_min": 9}
