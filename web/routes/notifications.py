"""Public notification routes: subscribe with an e-mail (double opt-in), confirm, unsubscribe.

`POST /api/v1/sites/SITE/subscriptions` asks for a confirmation e-mail (the widget calls it;
the answer never says whether the address was subscribed already). The links in e-mails lead
to `/notifications/confirm` and `/notifications/unsubscribe`: GET shows a page with a button
(so a mail scanner following links changes nothing), POST acts — and a POST to the
unsubscribe URL is also the RFC 8058 one-click unsubscribe that mail clients send.
"""

from __future__ import annotations

import html
import json
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from quart import Blueprint, Response, request
from quart_schema import tag, validate_request, validate_response

from appliance import events
from appliance.errors import EmailDisabled
from appliance.notify import consent
from appliance.notify.keys import address_hash
from appliance.notify.links import read_token
from appliance.notify.subscriptions import check_address
from appliance.services.rate_limits import Limit
from web.routes import runtime
from web.routes.site_access import add_cors_headers, client_ip, site_for_request
from web.schemas import ErrorResponse

notifications = Blueprint("notifications", __name__)
notifications.after_request(add_cors_headers)

# A network may ask for 10 confirmation e-mails an hour; one address gets at most 3 a day
# (and the notifier sends at most one per address and list per day whatever is asked).
SUBSCRIBE_PER_NETWORK = Limit("net", 10, 3600)
SUBSCRIBE_PER_ADDRESS = Limit("address", 3, 86400)
LIST_WORDS = {"replies": "replies to your comments", "posts": "new posts",
              "all": "all e-mails"}


class SubscribeRequest(BaseModel):
    """Ask for e-mails from this site; a confirmation link is sent to the address first."""

    model_config = ConfigDict(extra="forbid")
    email: StrictStr = Field(max_length=254, description="Where to send the e-mails.")
    list: Literal["posts", "replies"] = Field(
        "posts", description="posts: new posts; replies: replies to your comments.")


class SubscribeAccepted(BaseModel):
    status: Literal["confirmation_sent"]
    message: str


@notifications.post("/api/v1/sites/<site>/subscriptions")
@tag(["public"])
@validate_request(SubscribeRequest)
@validate_response(SubscribeAccepted, 202)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 409)
@validate_response(ErrorResponse, 429)
@validate_response(ErrorResponse, 503)
async def subscribe(site: str, data: SubscribeRequest):
    """Subscribe an e-mail address to a site's new posts (or replies to its comments). The
    address gets a confirmation link and nothing else until it is followed. Refused with
    409 `email_disabled` where the appliance sends no e-mail (no SMTP server set)."""
    record = await site_for_request(site)
    address = check_address(data.email)
    rt = runtime()
    if not rt.settings.smtp_host:  # a pending subscription nobody could ever confirm
        raise EmailDisabled("This site sends no e-mail, so it cannot take subscriptions.")
    await rt.limiter.check("subscribe", [
        (SUBSCRIBE_PER_NETWORK, await rt.comments.ip_salts.rate_key(record.name, client_ip())),
        (SUBSCRIBE_PER_ADDRESS, address_hash(record.name, address))])
    body = {"site": record.name, "to": address, "list": data.list,
            "idempotency_key": f"subscription_request:{uuid.uuid4().hex}"}
    await rt.redis.xadd(events.NOTIFICATION_STREAM,
                        {"kind": "subscription_request", "body": json.dumps(body)},
                        maxlen=1_000_000, approximate=True)
    return SubscribeAccepted(status="confirmation_sent",
                             message="If the address can receive e-mail, a confirmation "
                             "link is on its way."), 202


@notifications.get("/notifications/<any(confirm, unsubscribe):action>")
@tag(["public"])
async def link_page(action: str) -> Response:
    """The page an e-mail link opens: what the link will do, and a button to do it."""
    claim = read_token(runtime().hash_key, request.args.get("token", ""), action)
    site = html.escape(claim.site)
    wanted = LIST_WORDS.get(claim.list_name, "e-mails")
    if action == "confirm":
        text = f"Receive {wanted} from {site} at {html.escape(claim.address)}?"
        button = "Yes, send them"
    else:
        text = f"Stop {wanted} from {site} to {html.escape(claim.address)}?"
        button = "Unsubscribe"
    return _page(f"{text}</p>\n<form method=\"post\"><button type=\"submit\">{button}"
                 "</button></form><p>")


@notifications.post("/notifications/<any(confirm, unsubscribe):action>")
@tag(["public"])
async def link_action(action: str) -> Response:
    """Confirm a subscription, or unsubscribe (also the RFC 8058 one-click POST)."""
    rt = runtime()
    form = await request.form
    token = request.args.get("token") or form.get("token", "")
    claim = read_token(rt.hash_key, token, action)
    wanted = LIST_WORDS.get(claim.list_name, "e-mails")
    site = html.escape(claim.site)
    if action == "confirm":
        await rt.sql.run(consent.confirm, rt.database, rt.sync_redis, claim)
        return _page(f"Confirmed: you will receive {wanted} from {site}. Every e-mail has a "
                     "link to stop them.")
    await rt.sql.run(consent.unsubscribe, rt.database, rt.sync_redis, claim)
    return _page(f"Unsubscribed: no more {wanted} from {site} will be sent to "
                 f"{html.escape(claim.address)}.")


def _page(paragraph: str) -> Response:
    body = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width\">"
            "<title>Ovation e-mail notifications</title></head>\n"
            "<body style=\"font-family:sans-serif;max-width:36em;margin:3em auto\">\n"
            f"<p>{paragraph}</p>\n</body></html>\n")
    response = Response(body, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src "
                                                   "'unsafe-inline'; form-action 'self'")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response
