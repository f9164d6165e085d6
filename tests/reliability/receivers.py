"""The far ends of the scenario's notifications: a real SMTP server (aiosmtpd) and a webhook
receiver, both on loopback, in the runner process.

They behave like a receiver that deduplicates: each keeps, per comment, the idempotency keys it
saw and how many times it saw them, nothing else (a soak delivers tens of thousands). The
comment id comes from the notification itself (the webhook's JSON `data.comment_id`, the
e-mail's `#comment-ID` link), so a repeat that carried another key than the first delivery
would show up as a comment with two keys. The site publishes every comment at once, so every
notification must be a `new_comment` under the key `new_comment:ID`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter as Tally
from collections import defaultdict
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.conftest import free_port

COMMENT_LINK = re.compile(r"#comment-([0-9a-f]{32})")


class Deliveries:
    """What one channel received: per comment id, how often each idempotency key came."""

    def __init__(self, channel: str, ovation_channel: str) -> None:
        self.channel = channel
        self.ovation_channel = ovation_channel  # its name in Ovation's delivery queue
        self.lock = threading.Lock()
        self.keys: dict[str, Tally] = defaultdict(Tally)  # comment id -> key -> receipts
        self.unrecognised: list[str] = []  # receipts without a key or a comment id

    def record(self, key: str, comment_id: str, event: str) -> None:
        with self.lock:
            # The scenario's site publishes every comment at once (open moderation), so each
            # is a new_comment; anything else for a comment is a wrong notice.
            if not key or not comment_id or event != "new_comment":
                self.unrecognised.append(f"{self.channel}: event {event!r}, key {key!r}, "
                                         f"comment {comment_id!r}")
            else:
                self.keys[comment_id][key] += 1

    def received(self) -> set[str]:
        with self.lock:
            return set(self.keys)

    def receipts(self) -> int:
        with self.lock:
            return sum(sum(keys.values()) for keys in self.keys.values())

    def redelivered(self) -> int:
        """Receipts a deduplicating receiver drops: repeats of a key it has seen."""
        with self.lock:
            return sum(n - 1 for keys in self.keys.values() for n in keys.values())

    def problems(self) -> list[str]:
        """Notices that are not a comment's new_comment, and comments under several keys.
        (Comments never notified are the scenario's to judge: late or lost.)"""
        with self.lock:
            problems = list(self.unrecognised)
            for comment_id, keys in self.keys.items():
                if len(keys) > 1:
                    problems.append(f"{self.channel}: comment {comment_id} came with several "
                                    f"idempotency keys: {dict(keys)}")
                elif next(iter(keys)) != f"new_comment:{comment_id}":
                    problems.append(f"{self.channel}: comment {comment_id} came with the key "
                                    f"{next(iter(keys))!r}")
            return problems


class MailHandler:
    """aiosmtpd handler: accepts every message and records its key and comment id."""

    def __init__(self, deliveries: Deliveries) -> None:
        self.deliveries = deliveries

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        message = message_from_bytes(envelope.original_content or envelope.content,
                                     policy=policy.default)
        text = message.get_body(("plain",))
        found = COMMENT_LINK.search(text.get_content() if text is not None else "")
        self.deliveries.record(str(message.get("X-Ovation-Idempotency-Key", "")),
                               found.group(1) if found else "",
                               str(message.get("X-Ovation-Event", "")))
        return "250 Message accepted"


class Receivers:
    """The SMTP server and the webhook receiver, started and stopped together."""

    def __init__(self) -> None:
        self.mail = Deliveries("e-mail", "email")
        self.webhook = Deliveries("webhook", "webhook")
        self.smtp_port = free_port()
        self.smtp = Controller(MailHandler(self.mail), hostname="127.0.0.1",
                               port=self.smtp_port, ready_timeout=10)
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _webhook_handler(self.webhook))
        self.http.daemon_threads = True
        self.webhook_url = f"http://127.0.0.1:{self.http.server_address[1]}/ovation"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.started = False

    def start(self) -> None:
        self.thread.start()
        self.started = True
        self.smtp.start()

    def stop(self) -> None:
        if self.started:
            self.smtp.stop(no_assert=True)
            self.http.shutdown()
        self.http.server_close()

    def summary(self, acknowledged: set[str]) -> str:
        """For the table: acknowledged comments notified per channel, and repeats dropped."""
        parts = [f"{len(acknowledged & d.received())}/{len(acknowledged)} {d.channel}"
                 for d in (self.mail, self.webhook)]
        redelivered = self.mail.redelivered() + self.webhook.redelivered()
        return f"{', '.join(parts)}; {redelivered} redelivered"


def _webhook_handler(deliveries: Deliveries) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                comment_id = str(json.loads(body)["data"]["comment_id"])
            except (ValueError, KeyError, TypeError):
                comment_id = ""
            deliveries.record(self.headers.get("Ovation-Idempotency-Key", ""), comment_id,
                              self.headers.get("Ovation-Event", ""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    return Handler
