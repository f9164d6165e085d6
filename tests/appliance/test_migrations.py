"""Migrations: a fresh database gets the whole schema; a database made by an older Ovation is
brought up to date without losing rows. Both SQLite and PostgreSQL."""

from __future__ import annotations

from appliance.storage.migrations import MIGRATIONS, migrate, pending_migrations
from appliance.storage.models import Comment, SchemaMigration, Site
from appliance.storage.site_store import get_site


def test_fresh_database_is_complete_and_migrate_is_idempotent(settings):
    from appliance.storage.database import open_database

    database = open_database(settings.effective_database_url)
    assert [version for version, _ in pending_migrations(database)] == \
        [version for version, _, _ in MIGRATIONS]
    assert migrate(database)
    assert migrate(database) == [] and pending_migrations(database) == []
    with database.connection_context():
        columns = {column.name for column in database.get_columns("comment")}
    assert {"votes_up", "notify_replies", "avatar_seed"} <= columns
    database.close()


def test_a_version_1_database_is_upgraded_keeping_its_rows(database):
    """Rebuild what Ovation 0.1's first migration left: no v2 columns, no v2 tables."""
    with database.connection_context():
        Site.create(name="old", title="Old blog")
        for column in ("moderation", "owner_email"):
            database.execute_sql(f"ALTER TABLE site DROP COLUMN {column}")
        database.execute_sql("DROP INDEX IF EXISTS comment_page_status_created")
        for column in ("notify_replies", "avatar_seed", "votes_up", "votes_down"):
            database.execute_sql(f"ALTER TABLE comment DROP COLUMN {column}")
        database.execute_sql("DROP TABLE admin_token")
        database.execute_sql("DROP TABLE ban")
        SchemaMigration.delete().where(SchemaMigration.version > 1).execute()
    applied = migrate(database)
    assert [version for version, _ in applied] == [version for version, _, _ in MIGRATIONS][1:]
    record = get_site(database, "old")
    assert (record.title, record.moderation, record.owner_email) == ("Old blog", "open", "")
    with database.connection_context():
        assert Comment.select().count() == 0  # the table works with its new columns
        assert database.table_exists("admin_token") and database.table_exists("ban")


def test_a_version_5_database_gets_the_hidden_deletion_flag_and_keeps_its_comments(database):
    from appliance.services.sites import add_site
    from appliance.storage import comment_store

    add_site(database, "blog", [])
    comment_store.insert_comment(database, {
        "id": "a" * 32, "site": "blog", "path": "/post", "body_markdown": "kept",
        "body_html": "<p>kept</p>", "status": "deleted", "created_at": "2026-11-25T12:00:00"},
        max_depth=4)
    with database.connection_context():
        database.execute_sql("ALTER TABLE comment DROP COLUMN deleted_while_hidden")
        SchemaMigration.delete().where(SchemaMigration.version == 6).execute()
    assert [version for version, _ in migrate(database)] == [6]
    stored = comment_store.get_comment(database, "a" * 32)
    # A comment deleted before the flag existed stays a placeholder, as it was.
    assert (stored.body_html, stored.deleted_while_hidden) == ("<p>kept</p>", False)
    assert [c.id for c in comment_store.thread(database, "blog", "/post")] == ["a" * 32]
