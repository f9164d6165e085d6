"""SQL tables of the notification issue (migration 3): webhooks and e-mail subscriptions."""

from __future__ import annotations

import peewee as pw

from appliance.storage.models import BaseModel, Site, utcnow


class Webhook(BaseModel):
    """A URL that receives a site's notifications as signed HTTP POSTs."""

    site = pw.ForeignKeyField(Site, backref="webhooks", on_delete="CASCADE")
    url = pw.CharField(max_length=2048)
    secret = pw.CharField(max_length=128)  # kept in clear: it signs every delivery
    format = pw.CharField(max_length=16, default="json")  # json | slack | discord
    events = pw.CharField(max_length=200, default="*")  # comma-separated kinds, or *
    created_at = pw.DateTimeField(default=utcnow)


class EmailSubscription(BaseModel):
    """One address's consent to one list of a site: replies to its comments, or new posts.

    `pending` until the double opt-in link is followed, then `confirmed`; `unsubscribed` after
    the one-click link. Addresses are stored lower-cased.
    """

    site = pw.ForeignKeyField(Site, backref="subscriptions", on_delete="CASCADE")
    email = pw.CharField(max_length=254)
    list_name = pw.CharField(max_length=16)  # replies | posts
    status = pw.CharField(max_length=16, default="pending")
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("site", "email", "list_name"), True),)


NOTIFICATION_MODELS: tuple[type[BaseModel], ...] = (Webhook, EmailSubscription)
