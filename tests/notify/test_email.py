"""E-mail notifications through a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import ssl

import pytest

from appliance.notify import keys
from tests.notify.conftest import (
    OWNER,
    SITE,
    SQLITE_ONLY,
    accept_login,
    cid,
    make_notifier,
    pump,
    store_comment,
)

pytestmark = SQLITE_ONLY


def test_a_new_comment_reaches_the_owner_with_its_idempotency_key(
        redis_client, database, blog, smtp_server, notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings())
    store_comment(redis_client, database, cid(1), author="Ann", body="Nice *post*\n\nBye")
    pump(notifier, lambda: smtp_server.recorder.messages)
    [message] = smtp_server.recorder.messages
    assert smtp_server.recorder.envelopes == [("comments@blog.example", [OWNER])]
    assert message["To"] == OWNER
    assert message["Subject"] == "Ann commented on “/p” (A <b>blog</b>)"
    assert message["X-Ovation-Idempotency-Key"] == f"new_comment:{cid(1)}"
    assert message["X-Ovation-Event"] == "new_comment"
    assert message["Message-ID"].endswith("@blog.example>")
    assert "List-Unsubscribe" not in message  # the owner's own alerts, not a list
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "> Nice *post*\n> \n> Bye" in text.replace("\r\n", "\n")
    assert f"https://blog.example/p#comment-{cid(1)}" in text
    assert "A &lt;b&gt;blog&lt;/b&gt;" in html and "<b>blog" not in html


def test_pending_comments_tell_the_owner_how_to_approve(
        redis_client, database, blog, smtp_server, notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings())
    store_comment(redis_client, database, cid(2), status="pending")
    pump(notifier, lambda: smtp_server.recorder.messages)
    [message] = smtp_server.recorder.messages
    assert "awaits moderation" in message["Subject"]
    assert f"platformctl comments approve {cid(2)}" in message.get_body(("plain",)).get_content()


def test_header_and_markup_injection_stay_inert(redis_client, database, blog, smtp_server,
                                                notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings())
    store_comment(redis_client, database, cid(3),
                  author="Eve\r\nBcc: victim@example.org\r\nSubject: Buy now\u2028X-Evil: 1",
                  body='<script>alert(1)</script> <img src=x onerror="alert(2)"> '
                       '[click](javascript:alert(3))')
    pump(notifier, lambda: smtp_server.recorder.messages)
    [message] = smtp_server.recorder.messages
    assert smtp_server.recorder.envelopes[0][1] == [OWNER]  # nobody else got it
    assert "Bcc" not in message and "X-Evil" not in message
    assert message.get_all("Subject") == [message["Subject"]]
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert message["Subject"].startswith("Eve Bcc: victim@example.org Subject: Buy now X-Evil")
    html = message.get_body(("html",)).get_content()
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror=&quot;alert(2)&quot;" in html


def test_smtp_down_then_up_is_retried_and_delivered(redis_client, database, blog,
                                                     smtp_server, notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings(notify_max_attempts=50))
    smtp_server.stop()
    store_comment(redis_client, database, cid(4))
    pump(notifier, lambda: any(d.status == "retrying" and d.attempts >= 2
                               for d in notifier.queue.recent()))
    [waiting] = notifier.queue.recent(statuses=("retrying",))
    assert "Connection refused" in waiting.last_error or "ConnectionRefused" in \
        waiting.last_error
    smtp_server.start()
    pump(notifier, lambda: smtp_server.recorder.messages)
    assert notifier.queue.get(waiting.id).status == "delivered"
    figures = notifier.queue.figures()
    assert figures["delivered:email"] == 1 and figures["failed:email"] >= 2


def test_a_permanent_refusal_goes_straight_to_the_dead_letters(redis_client, database, blog,
                                                               smtp_server, notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings())
    smtp_server.recorder.refuse_with = "550 5.1.1 No such user"
    store_comment(redis_client, database, cid(5))
    pump(notifier, lambda: notifier.queue.dead_letters())
    [letter] = notifier.queue.dead_letters()
    assert letter.attempts == "1" and "550" in letter.error
    assert redis_client.xlen(keys.DEAD_LETTERS) == 1


@pytest.fixture
def server_tls(tls_files) -> ssl.SSLContext:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_starttls_with_authentication(redis_client, database, blog, smtp_server,
                                      notify_settings, tls_files, server_tls):
    smtp_server.stop()
    smtp_server.kwargs = dict(tls_context=server_tls, require_starttls=True,
                              auth_required=True, auth_require_tls=True,
                              authenticator=accept_login)
    smtp_server.start()
    notifier = make_notifier(redis_client, database, notify_settings(
        smtp_security="starttls", smtp_ca_file=str(tls_files[0]), smtp_username="mailer",
        smtp_password="s3cret"))
    store_comment(redis_client, database, cid(6))
    pump(notifier, lambda: smtp_server.recorder.messages)
    assert smtp_server.recorder.envelopes[0][1] == [OWNER]


def test_starttls_refuses_an_untrusted_certificate(redis_client, database, blog, smtp_server,
                                                   notify_settings, server_tls):
    smtp_server.stop()
    smtp_server.kwargs = dict(tls_context=server_tls, require_starttls=True)
    smtp_server.start()
    notifier = make_notifier(redis_client, database, notify_settings(smtp_security="starttls"))
    store_comment(redis_client, database, cid(7))
    pump(notifier, lambda: notifier.queue.recent(statuses=("retrying",)))
    [waiting] = notifier.queue.recent(statuses=("retrying",))
    assert "CERTIFICATE_VERIFY_FAILED" in waiting.last_error
    assert smtp_server.recorder.messages == []


def test_tls_from_the_start(redis_client, database, blog, smtp_server, notify_settings,
                            tls_files, server_tls):
    smtp_server.stop()
    smtp_server.kwargs = dict(ssl_context=server_tls)
    smtp_server.start()
    notifier = make_notifier(redis_client, database, notify_settings(
        smtp_security="tls", smtp_ca_file=str(tls_files[0])))
    store_comment(redis_client, database, cid(8))
    pump(notifier, lambda: smtp_server.recorder.messages)


def test_a_burst_for_one_recipient_becomes_one_digest(redis_client, database, blog,
                                                      smtp_server, notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings(notify_digest_window_s=1))
    for n in range(10, 14):
        store_comment(redis_client, database, cid(n), author=f"Reader {n}", body=f"Body {n}")
    pump(notifier, lambda: len(smtp_server.recorder.messages) == 2)
    first, digest = smtp_server.recorder.messages
    assert first["Subject"].startswith("Reader 10 commented")
    assert digest["Subject"] == "3 new notifications from A <b>blog</b>"
    text = digest.get_body(("plain",)).get_content()
    assert all(f"Body {n}" in text for n in (11, 12, 13))
    assert digest["X-Ovation-Idempotency-Key"].startswith("digest:")
    notifier.run_once(block_ms=50)
    assert len(smtp_server.recorder.messages) == 2


def test_the_hourly_cap_holds_back_the_rest(redis_client, database, blog, smtp_server,
                                            notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings(
        notify_email_cap_per_hour=2))
    for n in range(20, 25):
        store_comment(redis_client, database, cid(n))
    pump(notifier, lambda: len(smtp_server.recorder.messages) == 2)
    for _ in range(5):
        notifier.run_once(block_ms=20)
    assert len(smtp_server.recorder.messages) == 2
    [digest] = [d for d in notifier.queue.recent() if d.kind == "digest"]
    assert digest.status == "queued" and len(notifier.queue.get(digest.id).items) == 3


def test_without_an_smtp_host_no_email_is_queued(redis_client, database, blog, smtp_server,
                                                 notify_settings):
    notifier = make_notifier(redis_client, database, notify_settings(smtp_host=""))
    store_comment(redis_client, database, cid(30))
    for _ in range(3):
        notifier.run_once(block_ms=20)
    assert notifier.queue.recent() == [] and smtp_server.recorder.messages == []


def test_list_unsubscribe_goes_out_as_a_plain_url(redis_client, database, blog, smtp_server,
                                                  notify_settings):
    """RFC 2369 headers hold a URL in angle brackets and allow no RFC 2047 encoded-words.
    Python's default e-mail policy encoded the long header as `=?utf-8?q?=3Chttp…?=`, so no
    mail client saw an unsubscribe link (found in the `platformctl up` walk-through; the
    parsed message hid it, as Python decodes encoded-words on reading)."""
    from appliance.notify import subscriptions as subs
    from appliance.notify.links import read_token
    from appliance.workers.listener import handle_publish

    settings = notify_settings()
    subs.set_status(database, SITE, "reader@example.org", "posts", "confirmed")
    notifier = make_notifier(redis_client, database, settings)
    handle_publish(database, redis_client, "1-0", {"site": SITE, "path": "/a-long-path",
                                                   "title": "A post"})
    pump(notifier, lambda: smtp_server.recorder.raw)
    [raw] = smtp_server.recorder.raw
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")
    lines = head.split(b"\n")
    assert all(len(line) <= 998 for line in lines)  # RFC 5322's hard limit still holds
    [header] = [line for line in lines if line.lower().startswith(b"list-unsubscribe:")]
    prefix = b"List-Unsubscribe: <http://127.0.0.1:8700/notifications/unsubscribe?token="
    assert header.startswith(prefix) and header.endswith(b">") and b"=?" not in header
    token = header[len(prefix):-1].decode()
    claim = read_token(settings.hashing_key(), token, "unsubscribe")
    assert (claim.address, claim.list_name) == ("reader@example.org", "posts")
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
