"""From notification events to deliveries: who gets what, over which channel.

| event | e-mail | browser | webhooks |
| --- | --- | --- | --- |
| `new_comment`, `pending_comment` | the site owner (`to`) | — | the site's |
| `reply` | the parent's author, once confirmed (held till then) | the author | the site's |
| `new_post` | the site's confirmed `posts` subscribers | — | the site's |
| `subscription_request` | a confirmation request (double opt-in) | — | — |

Every handler is idempotent: deliveries have deterministic ids, so an event redelivered after
a crash creates nothing twice. Webhook and browser payloads never carry e-mail addresses.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import peewee as pw

from appliance.notify import keys
from appliance.notify import subscriptions as subs
from appliance.notify.queue import Delivery, DeliveryQueue
from appliance.notify.templates import block_text, one_line
from appliance.storage import comment_store
from appliance.storage.models import Page, Site
from appliance.storage.site_store import SiteRecord, get_site

log = logging.getLogger("ovation.notifier")
COMMENT_EVENTS = ("new_comment", "pending_comment", "reply")


class Router:
    def __init__(self, database: pw.Database, queue: DeliveryQueue, email_enabled: bool) -> None:
        self.database = database
        self.queue = queue
        self.email_enabled = email_enabled

    def handlers(self) -> dict:
        return {kind: self._handler(kind) for kind in
                (*COMMENT_EVENTS, "new_post", "subscription_request")}

    def _handler(self, kind: str):
        def handle(message_id: str, body: dict[str, Any]) -> None:
            if not isinstance(body, dict) or not isinstance(body.get("site"), str):
                raise ValueError("a notification needs a site")  # dead-lettered at once
            key = one_line(body.get("idempotency_key") or f"{kind}:{message_id}", 200)
            self.route(kind, key, body)

        return handle

    def route(self, kind: str, key: str, body: dict[str, Any]) -> None:
        # One connection for the event's few reads (site, comment, page, webhooks), not one
        # each: on PostgreSQL each was a new connection, on SQLite a new file handle.
        with self.database.connection_context():
            self._route(kind, key, body)

    def _route(self, kind: str, key: str, body: dict[str, Any]) -> None:
        site = get_site(self.database, body["site"])
        if site is None:
            raise ValueError(f"unknown site {body['site']!r}")
        if kind == "subscription_request":
            self._subscription_request(site, body)
            return
        payload = (self._comment_payload(site, body) if kind in COMMENT_EVENTS
                   else self._post_payload(site, body))
        if kind == "reply":
            self._reply(site, key, payload, body)
        elif kind == "new_post":
            for address in subs.confirmed_addresses(self.database, site.name, "posts"):
                self._email(Delivery(key, "email", address, site.name, kind, payload,
                                     list_name="posts"))
        elif subs.valid_address(str(body.get("to", ""))):
            self._email(Delivery(key, "email", str(body["to"]).lower(), site.name, kind,
                                 payload, list_name="owner"))
        for webhook in subs.list_webhooks(self.database, site.name):
            if webhook.wants(kind):
                self.queue.add(Delivery(key, "webhook", str(webhook.id), site.name, kind,
                                        payload))

    # -- recipients ----------------------------------------------------------------------------

    def _email(self, delivery: Delivery) -> None:
        if self.email_enabled:
            self.queue.add_email(delivery)

    def _reply(self, site: SiteRecord, key: str, payload: dict, body: dict) -> None:
        visitor = str(body.get("to_visitor_hash") or "")
        if visitor:
            self.queue.add(Delivery(key, "browser", visitor, site.name, "reply", payload))
        address = str(body.get("to", "")).lower()
        if not self.email_enabled or not subs.valid_address(address):
            return
        status = subs.subscription_status(self.database, site.name, address, "replies")
        delivery = Delivery(key, "email", address, site.name, "reply", payload,
                            list_name="replies")
        if status == "confirmed":
            self.queue.add_email(delivery)
        elif status != "unsubscribed":
            # Never mail an unconfirmed address: hold the reply, ask once for confirmation.
            self.queue.add(delivery, hold_key=keys.held(site.name, address, "replies"))
            if status is None:
                subs.set_status(self.database, site.name, address, "replies", "pending")
            self._request_confirmation(site, address, "replies")

    def _subscription_request(self, site: SiteRecord, body: dict) -> None:
        address, list_name = str(body.get("to", "")), str(body.get("list", ""))
        if not subs.valid_address(address) or list_name not in ("replies", "posts"):
            raise ValueError("a subscription request needs an address and a list")
        previous = subs.set_status(self.database, site.name, address, list_name, "pending",
                                   only_from=("unsubscribed",))
        if previous != "confirmed" and self.email_enabled:
            self._request_confirmation(site, address.lower(), list_name)

    def _request_confirmation(self, site: SiteRecord, address: str, list_name: str) -> None:
        # One confirmation request per address, list and day, however often it is asked for.
        day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        key = f"confirm:{list_name}:{keys.address_hash(site.name, address)}:{day}"
        self.queue.add(Delivery(key, "email", address, site.name, "confirm",
                                {"site": site.name, "site_title": site.title,
                                 "list_name": list_name}, list_name="confirm"))

    # -- payloads ------------------------------------------------------------------------------

    def _comment_payload(self, site: SiteRecord, body: dict) -> dict[str, Any]:
        comment_id = str(body.get("comment_id", ""))
        comment = comment_store.get_comment(self.database, comment_id) if comment_id else None
        path = comment.path if comment else str(body.get("path", ""))
        page_url = _page_url(site, path)
        return {"site": site.name, "site_title": site.title, "path": path,
                "page_title": self._page_title(site.name, path), "page_url": page_url,
                "comment_id": comment_id,
                "comment_url": f"{page_url}#comment-{comment_id}" if page_url else "",
                "author_name": one_line(comment.author_name if comment
                                        else body.get("author_name"), 100),
                "status": comment.status if comment else str(body.get("status", "")),
                "text": block_text(comment.body_markdown if comment else ""),
                "parent_id": body.get("parent_id") or (comment.parent_id if comment else None)}

    def _post_payload(self, site: SiteRecord, body: dict) -> dict[str, Any]:
        path = str(body.get("path", ""))
        return {"site": site.name, "site_title": site.title, "path": path,
                "title": one_line(body.get("title"), 500), "page_url": _page_url(site, path),
                "published_at": body.get("published_at")}

    def _page_title(self, site: str, path: str) -> str:
        with self.database.connection_context():
            page = (Page.select(Page.title).join(Site)
                    .where((Site.name == site) & (Page.path == path)).first())
        return page.title if page else ""


def _page_url(site: SiteRecord, path: str) -> str:
    """The page on the site's own origin (its first plain http(s) origin), if it has one."""
    for origin in site.origins:
        if origin.startswith(("https://", "http://")) and "*" not in origin:
            return origin.rstrip("/") + path
    return ""
