"""SQL reads and writes of the salts of the IP hashes (table `ip_salt`, migration 5).

The salts live in SQL, not Redis: every process on every host must hash an address the same
way, and losing them (a flushed Redis) would lift every IP ban at once. No rules here: see
services/ip_salts.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import NamedTuple

import peewee as pw

from appliance.storage.database import write_transaction
from appliance.storage.models import Ban, IpSalt


class _HideSalts(logging.Filter):
    """peewee logs every query with its parameters at debug level: a salt written to a log
    file would outlive its deletion, so the parameters of salt inserts are left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (isinstance(record.msg, tuple) and len(record.msg) == 2
                and isinstance(record.msg[0], str) and '"ip_salt"' in record.msg[0]
                and record.msg[0].lstrip().upper().startswith("INSERT")):
            record.msg = (record.msg[0], "(parameters hidden)")
        return True


logging.getLogger("peewee").addFilter(_HideSalts())


class StoredSalt(NamedTuple):
    starts_at_s: int  # Unix time it became current
    salt: str


def slot_start(now_s: float, rotation_s: int) -> int:
    """Start of the rotation slot `now_s` falls in: the same instant on every host."""
    return int(now_s // rotation_s) * rotation_s


def _retained(cutoff_s: float) -> list[StoredSalt]:
    rows = (IpSalt.select(IpSalt.starts_at_s, IpSalt.salt)
            .where(IpSalt.starts_at_s > cutoff_s).order_by(IpSalt.starts_at_s.desc()))
    return [StoredSalt(row.starts_at_s, row.salt) for row in rows]


def salts_in_use(database: pw.Database, now_s: float, rotation_s: int,
                 retention_s: int) -> list[StoredSalt]:
    """The retained salts, newest (the current one) first.

    When none is current yet, this rotates: it inserts a random salt for the slot and deletes
    the expired ones. Race-safe across processes and hosts: the slot's start is unique, so of
    simultaneous inserts one wins, the others are ignored, and everyone reads the winner."""
    start = slot_start(now_s, rotation_s)
    cutoff = now_s - retention_s
    with database.connection_context():
        salts = _retained(cutoff)
        if salts and salts[0].starts_at_s >= start:
            return salts
        with write_transaction(database):
            (IpSalt.insert(starts_at_s=start, salt=secrets.token_hex(32))
             .on_conflict_ignore().execute())
            _delete_expired(cutoff)
        return _retained(cutoff)


def delete_expired(database: pw.Database, now_s: float, retention_s: int) -> int:
    """Delete the salts older than the retention period (and the IP bans that died with
    them); returns how many salts went."""
    with database.connection_context(), write_transaction(database):
        return _delete_expired(now_s - retention_s)


def _delete_expired(cutoff_s: float) -> int:
    deleted = IpSalt.delete().where(IpSalt.starts_at_s <= cutoff_s).execute()
    # An IP ban stores a hash made under a salt at most as old as the ban itself: once the
    # ban is older than the retention, its salt is gone and nothing can match it any more.
    Ban.delete().where((Ban.kind == "ip") & (Ban.created_at <= _utc(cutoff_s))).execute()
    return deleted


def salt_kept_since(database: pw.Database, moment: dt.datetime) -> bool:
    """Whether the salt that was current at `moment` (naive UTC) still exists, so a hash made
    then can still be matched. Salts are deleted oldest first: it does exactly when some kept
    salt started no later than `moment`."""
    moment_s = moment.replace(tzinfo=dt.UTC).timestamp()
    with database.connection_context():
        return IpSalt.select().where(IpSalt.starts_at_s <= moment_s).exists()


def _utc(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).replace(tzinfo=None)
