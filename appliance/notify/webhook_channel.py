"""The webhook channel: a signed JSON POST (or a Slack or Discord message) to a site's URLs.

Headers: `Ovation-Signature: sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` keyed with the
webhook's secret; `Ovation-Timestamp` (Unix seconds); `Ovation-Idempotency-Key`;
`Ovation-Event`. Every hop (redirects included, at most `MAX_REDIRECTS`) is checked against
the SSRF rules on its resolved address, and the connection goes to that very address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlunsplit

import httpx

from appliance import __version__
from appliance.notify.outcomes import DeliveryFailed, NothingToDeliver
from appliance.notify.queue import Delivery
from appliance.notify.subscriptions import WebhookRecord
from appliance.notify.templates import block_text, one_line, safe_link, summary
from appliance.notify.url_safety import Target, UnsafeURL, check_target

MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#@<:-])")
FindWebhook = Callable[[int], WebhookRecord | None]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()


def render_body(fmt: str, delivery: Delivery) -> bytes:
    """The request body in the webhook's format."""
    payload = delivery.payload
    if fmt == "slack":
        body: dict[str, Any] = {"text": _slack_text(delivery.kind, payload)}
    elif fmt == "discord":
        body = {"content": _discord_text(delivery.kind, payload)[:2000],
                "allowed_mentions": {"parse": []}}  # never @everyone, whatever a name says
    else:
        body = {"idempotency_key": delivery.key, "event": delivery.kind,
                "site": delivery.site,
                "created_at": dt.datetime.fromtimestamp(delivery.created_at or time.time(),
                                                        dt.UTC).isoformat(),
                "data": payload}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _slack_text(kind: str, payload: dict[str, Any]) -> str:
    def esc(text: str) -> str:  # Slack's three control characters
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    line = esc(summary(kind, payload))
    link = safe_link(payload.get("comment_url") or payload.get("page_url"))
    if link:
        line += f" <{esc(link)}|Open>"
    text = block_text(payload.get("text"), 500)
    return line + ("\n" + "\n".join("> " + esc(part) for part in text.split("\n"))
                   if text else "")


def _discord_text(kind: str, payload: dict[str, Any]) -> str:
    def esc(text: str) -> str:
        return _DISCORD_MARKDOWN.sub(r"\\\1", text)

    line = esc(summary(kind, payload))
    link = safe_link(payload.get("comment_url") or payload.get("page_url"))
    if link:
        line += f"\n<{link}>"  # angle brackets: a plain link without an embed
    text = block_text(payload.get("text"), 500)
    return line + ("\n" + "\n".join("> " + esc(part) for part in text.split("\n"))
                   if text else "")


class WebhookChannel:
    def __init__(self, find_webhook: FindWebhook, timeout_s: float,
                 allow_private: bool) -> None:
        self.find_webhook = find_webhook
        self.allow_private = allow_private
        self.client = httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False,
                                   headers={"User-Agent": f"Ovation/{__version__} webhooks"})

    def close(self) -> None:
        self.client.close()

    def send(self, delivery: Delivery) -> None:
        try:
            webhook = self.find_webhook(int(delivery.target))
        except ValueError:
            webhook = None
        if webhook is None:
            raise NothingToDeliver(f"webhook {delivery.target} was removed")
        body = render_body(webhook.format, delivery)
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json",
                   "Ovation-Event": delivery.kind,
                   "Ovation-Idempotency-Key": delivery.key,
                   "Ovation-Timestamp": timestamp,
                   "Ovation-Signature": signature(webhook.secret, timestamp, body)}
        url = webhook.url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                target = check_target(url, self.allow_private)
            except UnsafeURL as exc:
                raise DeliveryFailed(exc.message, permanent=True) from None
            except OSError as exc:
                raise DeliveryFailed(str(exc)) from None
            status, location = self._post(target, body, headers)
            if status in REDIRECTS and location:
                url = urljoin(url, location)
                continue
            if 200 <= status < 300:
                return
            raise DeliveryFailed(f"{one_line(target.host)} answered HTTP {status}")
        raise DeliveryFailed(f"more than {MAX_REDIRECTS} redirects")

    def _post(self, target: Target, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """POST to the checked address itself, naming the host for HTTP and TLS."""
        address = target.address
        literal = f"[{address}]" if address.version == 6 else str(address)
        url = urlunsplit((target.url.scheme, f"{literal}:{target.port}",
                          target.url.path or "/", target.url.query, ""))
        host_header = target.url.netloc.rpartition("@")[2]
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        try:
            with self.client.stream("POST", url, content=body,
                                    headers={**headers, "Host": host_header},
                                    extensions=extensions) as response:
                # The body is never read: a receiver cannot make us download anything.
                return response.status_code, response.headers.get("location", "")
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{one_line(target.host)}: {type(exc).__name__}: "
                                 f"{one_line(exc, 300)}") from None
