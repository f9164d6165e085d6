"""The far ends of the scenario's notifications: a real SMTP server (aiosmtpd) and a webhook
receiver, both on loopback, in a process of their own.

They run apart from the runner, whose clients keep a CPU busy: in the runner's process they
answered slowly under load, and the notifier's throughput measured the test rig, not Ovation.
The process writes one line per notification received (channel, idempotency key, comment id,
event) to a file, which the runner reads.

The runner's side behaves like a receiver that deduplicates: it keeps, per comment, the
idempotency keys it saw and how many times. The comment id comes from the notification itself
(the webhook's JSON `data.comment_id`, the e-mail's `#comment-ID` link), so a repeat that
carried another key than the first delivery would show up as a comment with two keys. The site
publishes every comment at once, so every notification must be a `new_comment` under the key
`new_comment:ID`, or an e-mail digest (when the rig's settings allow digests): a digest has a
key of its own, `digest:ID`, and counts for every comment it links to.

`python -m tests.reliability.receivers SMTP_PORT HTTP_PORT FILE` runs the receiving process.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter as Tally
from collections import defaultdict
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import free_port

COMMENT_LINK = re.compile(r"#comment-([0-9a-f]{32})")
ROOT = Path(__file__).resolve().parents[2]


class Deliveries:
    """What one channel received: per comment id, how often each idempotency key came."""

    def __init__(self, channel: str, ovation_channel: str) -> None:
        self.channel = channel
        self.ovation_channel = ovation_channel  # its name in Ovation's delivery queue
        self.keys: dict[str, Tally] = defaultdict(Tally)  # comment id -> key -> receipts
        self.unrecognised: list[str] = []  # receipts without a key or a comment id

    def record(self, key: str, comment_id: str, event: str) -> None:
        # The scenario's site publishes every comment at once (open moderation), so each
        # is a new_comment, or part of a digest; anything else for a comment is a wrong notice.
        if not key or not comment_id or event not in ("new_comment", "digest"):
            self.unrecognised.append(f"{self.channel}: event {event!r}, key {key!r}, "
                                     f"comment {comment_id!r}")
        else:
            self.keys[comment_id][key] += 1

    def received(self) -> set[str]:
        return set(self.keys)

    def receipts(self) -> int:
        return sum(sum(keys.values()) for keys in self.keys.values())

    def redelivered(self) -> int:
        """Receipts a deduplicating receiver drops: repeats of a key it has seen."""
        return sum(n - 1 for keys in self.keys.values() for n in keys.values())

    def problems(self) -> list[str]:
        """Notices that are not a comment's new_comment, and comments under several keys.
        (Comments never notified are the scenario's to judge: late or lost.)"""
        problems = list(self.unrecognised)
        for comment_id, keys in self.keys.items():
            if len(keys) > 1:
                problems.append(f"{self.channel}: comment {comment_id} came with several "
                                f"idempotency keys: {dict(keys)}")
            elif next(iter(keys)) != f"new_comment:{comment_id}" \
                    and not next(iter(keys)).startswith("digest:"):
                problems.append(f"{self.channel}: comment {comment_id} came with the key "
                                f"{next(iter(keys))!r}")
        return problems


class Receivers:
    """The receiving process, and what it has received so far (read when asked for)."""

    def __init__(self, directory: Path) -> None:
        self.smtp_port, self.http_port = free_port(), free_port()
        self.webhook_url = f"http://127.0.0.1:{self.http_port}/ovation"
        self.log = directory / "receipts.tsv"
        self.offset = 0
        self.process: subprocess.Popen | None = None
        self._mail = Deliveries("e-mail", "email")
        self._webhook = Deliveries("webhook", "webhook")

    def start(self, timeout_s: float = 30.0) -> None:
        self.log.write_text("")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.receivers", str(self.smtp_port),
             str(self.http_port), str(self.log)], cwd=ROOT)
        deadline = time.monotonic() + timeout_s
        for port in (self.smtp_port, self.http_port):
            while not _listening(port):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the receivers did not listen on {port}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def mail(self) -> Deliveries:
        self.refresh()
        return self._mail

    @property
    def webhook(self) -> Deliveries:
        self.refresh()
        return self._webhook

    def refresh(self) -> None:
        """Take in the lines the receiving process has written since the last look."""
        with self.log.open("rb") as lines:
            lines.seek(self.offset)
            for line in lines:
                if not line.endswith(b"\n"):
                    break  # being written: next time
                self.offset += len(line)
                channel, key, comment_id, event = line.decode().rstrip("\n").split("\t")
                target = self._mail if channel == "e-mail" else self._webhook
                target.record(key, comment_id, event)

    def summary(self, acknowledged: set[str]) -> str:
        """For the table: acknowledged comments notified per channel, and repeats dropped."""
        channels = (self.mail, self.webhook)
        parts = [f"{len(acknowledged & d.received())}/{len(acknowledged)} {d.channel}"
                 for d in channels]
        redelivered = sum(d.redelivered() for d in channels)
        return f"{', '.join(parts)}; {redelivered} redelivered"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# -- the receiving process ---------------------------------------------------------------------

class ReceiptLog:
    """One tab-separated line per notification received, whole lines only."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a")
        self.lock = threading.Lock()

    def write(self, channel: str, key: str, comment_id: str, event: str) -> None:
        fields = [" ".join(str(value).split()) for value in (channel, key, comment_id, event)]
        with self.lock:
            self.file.write("\t".join(fields) + "\n")
            self.file.flush()


class MailHandler:
    """aiosmtpd handler: accepts every message and records its key and comment id."""

    def __init__(self, log: ReceiptLog) -> None:
        self.log = log

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        message = message_from_bytes(envelope.original_content or envelope.content,
                                     policy=policy.default)
        text = message.get_body(("plain",))
        # A digest links to every comment it carries; any other notice to its own comment.
        found = COMMENT_LINK.findall(text.get_content() if text is not None else "")
        key = str(message.get("X-Ovation-Idempotency-Key", ""))
        event = str(message.get("X-Ovation-Event", ""))
        for comment_id in (dict.fromkeys(found) if event == "digest" else found[:1]) or [""]:
            self.log.write("e-mail", key, comment_id, event)
        return "250 Message accepted"


def webhook_handler(log: ReceiptLog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            try:
                data = json.loads(body)["data"] if len(body) == length else None
            except (ValueError, KeyError, TypeError):
                data = None
            if not isinstance(data, dict):
                # Cut short (a notifier killed while sending) or not JSON: refused, so not
                # received; the notifier tries again. Any receiver would do the same.
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            log.write("webhook", self.headers.get("Ovation-Idempotency-Key", ""),
                      str(data.get("comment_id", "")), self.headers.get("Ovation-Event", ""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    return Handler


def serve(smtp_port: int, http_port: int, path: Path) -> None:
    from aiosmtpd.controller import Controller

    log = ReceiptLog(path)
    smtp = Controller(MailHandler(log), hostname="127.0.0.1", port=smtp_port, ready_timeout=10)
    http = ThreadingHTTPServer(("127.0.0.1", http_port), webhook_handler(log))
    http.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    smtp.start()
    threading.Thread(target=http.serve_forever, daemon=True).start()
    while not stop.wait(0.5):
        pass
    http.shutdown()
    smtp.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
