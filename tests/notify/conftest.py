"""Real peers for the notification tests: an SMTP server (aiosmtpd) and an HTTP receiver on
loopback, plus a notifier run in process on the private real Redis and SQL."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from appliance import events
from appliance.services.sites import add_site
from appliance.storage import site_store
from appliance.workers.notifier import Notifier
from appliance.workers.stream_consumer import publish_event
from tests.conftest import free_port

SITE = "blog"
ORIGIN = "https://blog.example"
OWNER = "owner@blog.example"


# -- SMTP --------------------------------------------------------------------------------------

class MailRecorder:
    """aiosmtpd handler keeping every message; can refuse or stall on demand."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.raw: list[bytes] = []  # as received: what a mail client parses, not re-decoded
        self.refuse_with: str | None = None  # e.g. "550 no such user"
        self.stall_s = 0.0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        if self.stall_s:
            import asyncio

            await asyncio.sleep(self.stall_s)
        if self.refuse_with:
            return self.refuse_with
        self.raw.append(envelope.original_content or envelope.content)
        self.messages.append(message_from_bytes(self.raw[-1], policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"].addresses[0].addr_spec
                == address]


@dataclasses.dataclass
class SmtpServer:
    recorder: MailRecorder
    port: int
    controller: Controller | None = None
    kwargs: dict = dataclasses.field(default_factory=dict)

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port,
                                     ready_timeout=10, **self.kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(MailRecorder(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (the test's own CA file)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def accept_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == b"mailer" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


# -- HTTP receiver -----------------------------------------------------------------------------

@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver: records each POST; `respond` decides the answer (status, headers)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.respond: Callable[[Received], tuple[int, dict[str, str]]] = lambda _r: (200, {})
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length", 0))
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(length))
                receiver.requests.append(request)
                status, headers = receiver.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def unique_keys(self) -> set[str]:
        """What a receiver that dedupes by idempotency key has processed."""
        return {request.headers["ovation-idempotency-key"] for request in self.requests}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver()
    yield peer
    peer.close()


# -- Ovation side ------------------------------------------------------------------------------

@pytest.fixture
def notify_settings(make_settings, database_url, smtp_server):
    """Fast retries, e-mail to the test SMTP server, webhooks allowed to reach loopback."""
    def build(**values):
        defaults = dict(smtp_host="127.0.0.1", smtp_port=smtp_server.port,
                        smtp_security="none", smtp_from="Blog <comments@blog.example>",
                        notify_retry_base_s=0.05, notify_retry_max_s=0.2,
                        notify_max_attempts=3, notify_timeout_s=2.0,
                        notify_webhook_allow_private=True, notify_digest_window_s=0,
                        public_url="http://127.0.0.1:8700")
        return make_settings(database_url, **{**defaults, **values})

    return build


@pytest.fixture
def blog(database):
    add_site(database, SITE, [ORIGIN], title="A <b>blog</b>")
    record = site_store.get_site(database, SITE)
    site_store.update_site(database, dataclasses.replace(record, owner_email=OWNER))
    return record


def make_notifier(redis_client, database, settings) -> Notifier:
    return Notifier(redis_client, database, settings)


def pump(notifier: Notifier, until: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Run the notifier's loop in this thread until `until()` holds."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("the notifier did not get there in time: "
                                 f"{notifier.queue.recent(10)}")
        notifier.run_once(block_ms=20)
        time.sleep(0.01)


def notify(redis_client, kind: str, **body) -> str:
    return publish_event(redis_client, events.NOTIFICATION_STREAM, kind, body)


# Most notification tests exercise Redis and the peers; SQL is tested on both elsewhere.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def store_comment(redis_client, database, comment_id: str, *, author: str = "Ann",
                  email: str = "", notify_replies: bool = False, parent: str | None = None,
                  visitor: str = "a" * 32, body: str = "Hello there", path: str = "/p",
                  status: str = "approved") -> None:
    """What the listener does with a comment from the submission stream (the real handler,
    which also queues the notifications)."""
    import datetime as dt

    from appliance.workers.comment_handlers import handle_comment

    handle_comment(redis_client, database, 4, {
        "id": comment_id, "site": SITE, "path": path, "body_markdown": body, "status": status,
        "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
        "author_name": author, "author_email": email, "visitor_hash": visitor,
        "notify_replies": notify_replies, "parent_id": parent})


def cid(n: int) -> str:
    return f"{n:032x}"
