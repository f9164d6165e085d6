"""Following the links of notification e-mails: confirm a list (double opt-in), unsubscribe.

Blocking (SQL and Redis), shared by the web routes (in the SQL thread pool) and the tests.
"""

from __future__ import annotations

import logging

import peewee as pw
import redis

from appliance.notify import keys
from appliance.notify import subscriptions as subs
from appliance.notify.links import LISTS, LinkClaim
from appliance.notify.queue import DeliveryQueue

log = logging.getLogger("ovation.notifications")


def confirm(database: pw.Database, client: redis.Redis, claim: LinkClaim) -> int:
    """Confirm the claim's list and send what waited for it; returns how many were waiting."""
    subs.set_status(database, claim.site, claim.address, claim.list_name, "confirmed")
    released = DeliveryQueue(client).release_held(
        keys.held(claim.site, claim.address, claim.list_name))
    log.info("confirmed %s of %s (%d waiting notifications released)", claim.list_name,
             claim.site, released)
    return released


def unsubscribe(database: pw.Database, client: redis.Redis, claim: LinkClaim) -> None:
    """Stop the claim's list (or every list, for `all`) and drop what waits for it."""
    queue = DeliveryQueue(client)
    for list_name in LISTS if claim.list_name == "all" else (claim.list_name,):
        subs.set_status(database, claim.site, claim.address, list_name, "unsubscribed")
        queue.drop_held(keys.held(claim.site, claim.address, list_name))
    log.info("unsubscribed from %s of %s", claim.list_name, claim.site)
