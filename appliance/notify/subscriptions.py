"""E-mail subscriptions (double opt-in) and webhooks: SQL reads and writes, and their rules.

An address receives reply or new-post e-mails from a site only after confirming that list
through a signed link, so nobody can make Ovation mail an address that did not ask for it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

import peewee as pw

from appliance.errors import InvalidInput, OvationError, UnknownSite
from appliance.notify.links import LISTS
from appliance.storage.database import write_transaction
from appliance.storage.models import Site, utcnow
from appliance.storage.notification_models import EmailSubscription, Webhook

# Conservative on purpose: no spaces, quotes, angle brackets or control characters, so an
# address can go into a header as it is.
ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}"
                     r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")
WEBHOOK_FORMATS = ("json", "slack", "discord")
WEBHOOK_EVENTS = ("new_comment", "pending_comment", "reply", "new_post")


def valid_address(address: str) -> bool:
    return isinstance(address, str) and len(address) <= 254 and bool(ADDRESS.match(address))


def check_address(address: str, field: str = "email") -> str:
    address = address.strip() if isinstance(address, str) else ""
    if not valid_address(address):
        raise InvalidInput(f"{field} is not an e-mail address.", details={"field": field})
    return address.lower()


def _site(name: str) -> Site:
    site = Site.get_or_none(Site.name == name)
    if site is None:
        raise UnknownSite(f"No site is called {name!r}.")
    return site


# -- subscriptions ---------------------------------------------------------------------------

def subscription_status(database: pw.Database, site: str, address: str,
                        list_name: str) -> str | None:
    with database.connection_context():
        row = (EmailSubscription.select(EmailSubscription.status).join(Site)
               .where((Site.name == site) & (EmailSubscription.email == address.lower())
                      & (EmailSubscription.list_name == list_name)).first())
        return row.status if row else None


def set_status(database: pw.Database, site: str, address: str, list_name: str,
               status: str, only_from: tuple[str, ...] | None = None) -> str | None:
    """Create or update the subscription; returns its previous status (None: new).

    With `only_from`, an existing row changes only when its status is one of those."""
    if list_name not in LISTS:
        raise InvalidInput(f"list must be one of {', '.join(LISTS)}.", details={"field": "list"})
    address = address.lower()
    with database.connection_context(), write_transaction(database):
        site_row = _site(site)
        row = EmailSubscription.get_or_none(
            (EmailSubscription.site == site_row) & (EmailSubscription.email == address)
            & (EmailSubscription.list_name == list_name))
        if row is None:
            try:
                with write_transaction(database):  # a savepoint: a conflict spoils only it
                    EmailSubscription.create(site=site_row, email=address,
                                             list_name=list_name, status=status)
                return None
            except pw.IntegrityError:  # created meanwhile by another process
                row = EmailSubscription.get(
                    (EmailSubscription.site == site_row) & (EmailSubscription.email == address)
                    & (EmailSubscription.list_name == list_name))
        previous = row.status
        if only_from is None or previous in only_from:
            (EmailSubscription.update(status=status, updated_at=utcnow())
             .where(EmailSubscription.id == row.id).execute())
        return previous


def confirmed_addresses(database: pw.Database, site: str, list_name: str) -> list[str]:
    with database.connection_context():
        return [row.email for row in EmailSubscription.select(EmailSubscription.email).join(Site)
                .where((Site.name == site) & (EmailSubscription.list_name == list_name)
                       & (EmailSubscription.status == "confirmed"))
                .order_by(EmailSubscription.id)]


# -- webhooks --------------------------------------------------------------------------------

@dataclass(frozen=True)
class WebhookRecord:
    id: int
    site: str
    url: str
    secret: str
    format: str
    events: tuple[str, ...]  # empty: every event
    created_at: dt.datetime

    def wants(self, kind: str) -> bool:
        return not self.events or kind in self.events


def _webhook(row: Webhook, site: str) -> WebhookRecord:
    events = tuple(item for item in row.events.split(",") if item and item != "*")
    return WebhookRecord(row.id, site, row.url, row.secret, row.format, events,
                         row.created_at)


def add_webhook(database: pw.Database, site: str, url: str, fmt: str = "json",
                events: list[str] | None = None) -> WebhookRecord:
    """Store a webhook with a new random secret (the URL is checked by the caller)."""
    if fmt not in WEBHOOK_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(WEBHOOK_FORMATS)}.",
                           details={"field": "format"})
    unknown = sorted(set(events or ()) - set(WEBHOOK_EVENTS))
    if unknown:
        raise InvalidInput(f"unknown event {unknown[0]!r}: use {', '.join(WEBHOOK_EVENTS)}.",
                           details={"field": "events"})
    secret = "whsec_" + secrets.token_urlsafe(32)
    with database.connection_context(), write_transaction(database):
        row = Webhook.create(site=_site(site), url=url, secret=secret, format=fmt,
                             events=",".join(sorted(set(events or ()))) or "*")
        return _webhook(row, site)


def list_webhooks(database: pw.Database, site: str | None = None) -> list[WebhookRecord]:
    with database.connection_context():
        query = Webhook.select(Webhook, Site.name).join(Site).order_by(Webhook.id)
        if site is not None:
            query = query.where(Site.name == site)
        return [_webhook(row, row.site.name) for row in query]


def get_webhook(database: pw.Database, webhook_id: int) -> WebhookRecord | None:
    with database.connection_context():
        row = Webhook.select(Webhook, Site.name).join(Site).where(Webhook.id == webhook_id).first()
        return _webhook(row, row.site.name) if row else None


def remove_webhook(database: pw.Database, webhook_id: int) -> None:
    with database.connection_context():
        if not Webhook.delete().where(Webhook.id == webhook_id).execute():
            raise OvationError(f"No webhook has the id {webhook_id}.", code="unknown_webhook",
                               status=404)
