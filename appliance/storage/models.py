"""The SQL schema, identical on SQLite and PostgreSQL. Changes go through `migrations.py`."""

from __future__ import annotations

import datetime as dt

import peewee as pw

database_proxy = pw.DatabaseProxy()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        # Table and index names from snake_case class names; peewee's legacy names can
        # collide on PostgreSQL, after which ON CONFLICT fails (TESTING.md).
        legacy_table_names = False


class Site(BaseModel):
    """A blog or content site that embeds the widget."""

    name = pw.CharField(max_length=64, unique=True)
    title = pw.CharField(max_length=200, default="")
    origins = pw.TextField(default="[]")  # JSON list of allowed origins
    accept_unpublished_pages = pw.BooleanField(default=True)
    reaction_options = pw.TextField(default="{}")  # JSON {type: {option: value}}
    feed_url = pw.CharField(max_length=2048, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    # open | all | first_time | links: which new comments wait for a moderator (migration 2)
    moderation = pw.CharField(max_length=16, default="open")
    owner_email = pw.CharField(max_length=254, default="")
    # migration 4
    reactions = pw.TextField(default="")  # JSON list of reaction types shown; "" = the defaults
    rate_limits = pw.TextField(default="{}")  # JSON {limit name: per-minute value} overrides


class Page(BaseModel):
    """One page of a site, keyed by its normalised path."""

    site = pw.ForeignKeyField(Site, backref="pages", on_delete="CASCADE")
    path = pw.CharField(max_length=1024)
    title = pw.CharField(max_length=500, default="")
    published_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("site", "path"), True),)


class Counter(BaseModel):
    """A page's total for one reaction type. Written only by the flusher."""

    page = pw.ForeignKeyField(Page, backref="counters", on_delete="CASCADE")
    reaction = pw.CharField(max_length=64)  # a type, or TYPE.PART for choices and scores
    total = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("page", "reaction"), True),)


class UniqueVisitors(BaseModel):
    """HyperLogLog estimate of distinct visitors of a page, copied from Redis at each flush."""

    page = pw.ForeignKeyField(Page, primary_key=True, on_delete="CASCADE")
    estimate = pw.BigIntegerField(default=0)


class FlushBatch(BaseModel):
    """A flush batch applied to SQL; its row commits together with the counters it moved."""

    batch_id = pw.CharField(max_length=64, unique=True)
    applied_at = pw.DateTimeField(default=utcnow)
    counters = pw.IntegerField(default=0)
    interactions = pw.BigIntegerField(default=0)


class Comment(BaseModel):
    """A reader's comment. Written by the listener (and moderation); vote totals by the flusher."""

    id = pw.CharField(max_length=32, primary_key=True)
    page = pw.ForeignKeyField(Page, backref="comments", on_delete="CASCADE")
    parent = pw.ForeignKeyField("self", null=True, backref="replies", on_delete="SET NULL")
    depth = pw.SmallIntegerField(default=0)
    author_name = pw.CharField(max_length=100, default="")
    author_email = pw.CharField(max_length=254, default="")
    author_website = pw.CharField(max_length=500, default="")
    body_markdown = pw.TextField()
    body_html = pw.TextField()
    status = pw.CharField(max_length=16, default="pending", index=True)
    visitor_hash = pw.CharField(max_length=64, default="")
    ip_hash = pw.CharField(max_length=64, default="")
    edit_token_hash = pw.CharField(max_length=64, default="")
    created_at = pw.DateTimeField(default=utcnow, index=True)
    edited_at = pw.DateTimeField(null=True)
    # migration 2
    notify_replies = pw.BooleanField(default=False)
    avatar_seed = pw.CharField(max_length=32, default="")
    votes_up = pw.BigIntegerField(default=0)
    votes_down = pw.BigIntegerField(default=0)
    # migration 6: deleted while readers could not see it (pending, rejected or spam), so it
    # stays out of the thread, but for a placeholder above replies readers do see.
    deleted_while_hidden = pw.BooleanField(default=False)


class AdminToken(BaseModel):
    """A bearer token for the admin API; only its SHA-256 is stored."""

    name = pw.CharField(max_length=100)
    token_hash = pw.CharField(max_length=64, unique=True)
    scopes = pw.CharField(max_length=100, default="read")  # comma-separated: read,moderate,admin
    site = pw.CharField(max_length=64, null=True)  # bound to one site, or None for all
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)


class Ban(BaseModel):
    """A visitor or an IP (both as keyed hashes) that may not comment on a site."""

    site = pw.ForeignKeyField(Site, backref="bans", on_delete="CASCADE")
    kind = pw.CharField(max_length=16)  # visitor | ip
    value_hash = pw.CharField(max_length=64)
    reason = pw.CharField(max_length=200, default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("site", "kind", "value_hash"), True),)


class ProcessedEvent(BaseModel):
    """Stream events already applied, so a redelivered event changes nothing (idempotency)."""

    event_id = pw.CharField(max_length=64, primary_key=True)
    processed_at = pw.DateTimeField(default=utcnow)


class IpSalt(BaseModel):
    """A random salt of the IP hashes, current from `starts_at_s` (Unix time) until the next.

    Deleted after the retention period, so the hashes made with it can no longer be linked
    to an address, not even by whoever holds the secret key (migration 5)."""

    starts_at_s = pw.BigIntegerField(unique=True)  # one salt per rotation slot, whoever makes it
    salt = pw.CharField(max_length=64)


class SchemaMigration(BaseModel):
    version = pw.IntegerField(primary_key=True)
    name = pw.CharField(max_length=100)
    applied_at = pw.DateTimeField(default=utcnow)


ALL_MODELS: tuple[type[BaseModel], ...] = (
    Site, Page, Counter, UniqueVisitors, FlushBatch, Comment, ProcessedEvent, AdminToken, Ban,
    IpSalt,
)
