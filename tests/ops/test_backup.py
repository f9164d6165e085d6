"""backup/restore round trips on SQLite and PostgreSQL: pending counters are flushed into the
backup, a restore brings the database back exactly, wrong files are refused untouched."""

from __future__ import annotations

import pytest

from appliance.jobs.flush import pending_counters
from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from appliance.storage.models import Comment, Counter, Page
from tests.ops.conftest import SAMPLES


def counter_total(database, path: str, reaction: str) -> int | None:
    with database.connection_context():
        row = (Counter.select(Counter.total).join(Page)
               .where((Page.path == path) & (Counter.reaction == reaction)).first())
        return row.total if row else None


def test_backup_flushes_then_restore_brings_everything_back(platformctl, database, settings,
                                                            redis_client, tmp_path):
    add_site(database, "blog", ["https://blog.example"])
    assert platformctl("import", str(SAMPLES / "disqus.xml"), "--site", "blog").exit_code == 0
    # an acknowledged interaction still pending in Redis
    redis_client.hset(keys.PENDING, keys.counter_field("blog", "like", "/liked"), 7)
    assert pending_counters(redis_client) == 1

    target = tmp_path / "backups" / "first.bak"
    result = platformctl("backup", "--to", str(target))
    assert result.exit_code == 0, result.output
    assert "flushed 1 pending counter(s) first" in result.output
    assert target.stat().st_mode & 0o077 == 0
    assert counter_total(database, "/liked", "like") == 7

    again = platformctl("backup", "--to", str(target))
    assert again.exit_code == 1 and "exists already" in again.output

    # damage: delete the comments, change the counter
    with database.connection_context():
        Comment.delete().execute()
        Counter.update(total=1).execute()
    database.close()
    restored = platformctl("restore", "--yes", str(target))
    assert restored.exit_code == 0, restored.output
    with database.connection_context():
        assert Comment.select().count() == 5
    assert counter_total(database, "/liked", "like") == 7


def test_restore_refuses_wrong_files_and_changes_nothing(platformctl, database, tmp_path):
    add_site(database, "blog", [])
    junk = tmp_path / "junk.bak"
    junk.write_text("not a backup")
    result = platformctl("restore", "--yes", str(junk))
    assert result.exit_code == 1 and "is not an Ovation backup" in result.output
    isso = tmp_path / "isso.db"
    import sqlite3

    sqlite3.connect(isso).executescript((SAMPLES / "isso.sql").read_text())
    if database.__class__.__name__ == "SqliteDatabase":
        foreign = platformctl("restore", "--yes", str(isso))
        assert foreign.exit_code == 1 and "not an Ovation one" in foreign.output
    else:
        foreign = platformctl("restore", "--yes", str(isso))
        assert foreign.exit_code == 1 and "with `platformctl export`" in foreign.output
    with database.connection_context():
        from appliance.storage.models import Site

        assert Site.select().count() == 1


def test_default_backup_location(platformctl, database, settings):
    result = platformctl("backup")
    assert result.exit_code == 0, result.output
    backups = list((settings.data_dir / "backups").iterdir())
    assert len(backups) == 1
    assert backups[0].suffix == (".db" if settings.effective_database_url.startswith("sqlite")
                                 else ".pgdump")


@pytest.mark.parametrize("answer", ["n\n"])
def test_restore_asks_first(platformctl, database, tmp_path, answer):
    target = tmp_path / "b.bak"
    assert platformctl("backup", "--to", str(target)).exit_code == 0
    result = platformctl("restore", str(target), input=answer)
    assert result.exit_code == 1 and "Aborted" in result.output


def test_backup_from_cron_writes_nothing_to_stderr(make_settings, sqlite_url, tmp_path):
    """The progress bar is for terminals: without one (cron, scripts) stderr stays empty,
    where a transient bar used to leave an empty line for cron to mail."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.ops.conftest import settings_environment

    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    env.update(settings_environment(make_settings(sqlite_url)))
    for args in (["migrate"], ["backup", "--to", str(tmp_path / "cron.db")]):
        result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "Backed up the sqlite database" in result.stdout
    assert result.stderr == ""
