"""Webhooks to a real HTTP receiver on loopback: signatures, formats, retries, SSRF refusals."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import threading
import time

import pytest
from typer.testing import CliRunner

import cli.main
from appliance.notify.subscriptions import add_webhook, remove_webhook
from appliance.notify.url_safety import UnsafeURL, check_target, refusal
from tests.notify.conftest import (
    SITE,
    SQLITE_ONLY,
    cid,
    make_notifier,
    pump,
    store_comment,
)

pytestmark = SQLITE_ONLY
EVIL_NAME = "Eve <!channel> @everyone [click](https://evil.example) **bold**"


def verify(secret: str, request) -> bool:
    """What a receiver does (docs/notifications.md shows the same)."""
    timestamp = request.headers["ovation-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + request.body,
                                    hashlib.sha256).hexdigest()
    return (hmac.compare_digest(expected, request.headers["ovation-signature"])
            and abs(time.time() - int(timestamp)) < 300)


def test_a_signed_json_delivery(redis_client, database, blog, receiver, notify_settings):
    webhook = add_webhook(database, SITE, receiver.url + "/hook")
    notifier = make_notifier(redis_client, database, notify_settings(smtp_host=""))
    store_comment(redis_client, database, cid(1), author="Ann", email="ann@example.org",
                  body="Hi <b>there</b>")
    pump(notifier, lambda: receiver.requests)
    [request] = receiver.requests
    assert request.path == "/hook" and verify(webhook.secret, request)
    assert not verify("whsec_wrong", request)
    assert request.headers["ovation-idempotency-key"] == f"new_comment:{cid(1)}"
    assert request.headers["ovation-event"] == "new_comment"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["idempotency_key"] == f"new_comment:{cid(1)}"
    assert (body["event"], body["site"]) == ("new_comment", SITE)
    data = body["data"]
    assert (data["comment_id"], data["author_name"], data["text"]) == \
        (cid(1), "Ann", "Hi <b>there</b>")
    assert data["comment_url"] == f"https://blog.example/p#comment-{cid(1)}"
    assert "ann@example.org" not in request.body.decode()  # no addresses in webhooks
    assert "owner@blog.example" not in request.body.decode()


def test_event_filters_and_removed_webhooks(redis_client, database, blog, receiver,
                                            notify_settings):
    add_webhook(database, SITE, receiver.url + "/posts", events=["new_post"])
    gone = add_webhook(database, SITE, receiver.url + "/gone")
    notifier = make_notifier(redis_client, database, notify_settings(smtp_host=""))
    store_comment(redis_client, database, cid(2))
    notifier.consumer.run_once()
    remove_webhook(database, gone.id)
    pump(notifier, lambda: any(d.status == "dropped" for d in notifier.queue.recent()))
    assert receiver.requests == []


@pytest.mark.parametrize("fmt", ["slack", "discord"])
def test_chat_formats_escape_what_readers_wrote(redis_client, database, blog, receiver,
                                                notify_settings, fmt):
    webhook = add_webhook(database, SITE, receiver.url, fmt)
    notifier = make_notifier(redis_client, database, notify_settings(smtp_host=""))
    store_comment(redis_client, database, cid(3), author=EVIL_NAME, body="<@123> hi")
    pump(notifier, lambda: receiver.requests)
    [request] = receiver.requests
    assert verify(webhook.secret, request)
    body = request.json()
    if fmt == "slack":
        text = body["text"]
        assert "<!channel>" not in text and "&lt;!channel&gt;" in text
        assert "<@123>" not in text and "&lt;@123&gt;" in text
        assert text.endswith("\n> &lt;@123&gt; hi")  # a Slack quote, escaped inside
        assert f"<https://blog.example/p#comment-{cid(3)}|Open>" in text
    else:
        content = body["content"]
        assert body["allowed_mentions"] == {"parse": []}
        assert "[click](" not in content and r"\[click\]\(" in content
        assert "**bold**" not in content and "<@123>" not in content


def test_a_failing_webhook_is_dead_lettered_and_retry_brings_it_back(
        redis_client, database, blog, receiver, notify_settings, tmp_path):
    settings = notify_settings(smtp_host="", notify_max_attempts=3)
    add_webhook(database, SITE, receiver.url)
    receiver.respond = lambda _request: (500, {})
    notifier = make_notifier(redis_client, database, settings)
    store_comment(redis_client, database, cid(4))
    pump(notifier, lambda: notifier.queue.dead_letters())
    assert len(receiver.requests) == 3
    [letter] = notifier.queue.dead_letters()
    assert letter.attempts == "3" and "HTTP 500" in letter.error

    runner = CliRunner()
    env = {"OVATION_DATA_DIR": str(settings.data_dir), "OVATION_REDIS_URL": settings.redis_url,
           "OVATION_DATABASE_URL": settings.database_url}
    listed = runner.invoke(cli.main.app, ["notifications", "list", "--dead"], env=env)
    assert listed.exit_code == 0, listed.output
    assert letter.entry_id in listed.output and letter.delivery in listed.output
    receiver.respond = lambda _request: (204, {})
    retried = runner.invoke(cli.main.app, ["notifications", "retry", "--all-dead"], env=env)
    assert retried.exit_code == 0 and "Requeued 1 dead letter" in retried.output
    pump(notifier, lambda: len(receiver.requests) == 4)
    assert receiver.unique_keys() == {f"new_comment:{cid(4)}"}  # one event, four attempts
    pump(notifier, lambda: notifier.queue.recent()[0].status == "delivered")
    assert notifier.queue.dead_letters() == []


def test_a_receiver_that_does_not_answer_in_time_is_retried(redis_client, database, blog,
                                                             receiver, notify_settings):
    add_webhook(database, SITE, receiver.url)
    stalled = threading.Event()

    def respond(_request):
        if len(receiver.requests) == 1:  # the first attempt: answer long after the timeout
            stalled.wait(5)
        return 200, {}

    receiver.respond = respond
    notifier = make_notifier(redis_client, database, notify_settings(
        smtp_host="", notify_timeout_s=0.3, notify_max_attempts=5))
    try:
        store_comment(redis_client, database, cid(7))
        pump(notifier, lambda: notifier.queue.recent(statuses=("retrying",)))
        [waiting] = notifier.queue.recent(statuses=("retrying",))
        assert "Timeout" in waiting.last_error, waiting.last_error
        pump(notifier, lambda: notifier.queue.get(waiting.id).status == "delivered")
    finally:
        stalled.set()
    assert len(receiver.requests) == 2 and receiver.unique_keys() == {f"new_comment:{cid(7)}"}


# -- SSRF --------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "fd00:ec2::254"])
def test_non_public_addresses_are_refused(database_url, address):
    assert refusal(ipaddress.ip_address(address), allow_private=False)


def test_allowing_private_addresses_never_allows_metadata(database_url):
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow_private=True) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    assert refusal(ipaddress.ip_address("169.254.169.254"), allow_private=True)
    assert refusal(ipaddress.ip_address("fd00:ec2::254"), allow_private=True)
    assert refusal(ipaddress.ip_address("93.184.216.34"), allow_private=False) is None


@pytest.mark.parametrize("url", [
    "http://localhost/hook",  # a name that resolves to loopback
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.1/hook", "http://[::1]:8080/", "http://metadata.google.internal/",
    "ftp://example.org/", "file:///etc/passwd", "http://user:pw@example.org/",
    "http:///nohost", "http://exa mple.org/", "javascript:alert(1)"])
def test_unsafe_urls_are_refused(database_url, url):
    with pytest.raises((UnsafeURL, OSError)):
        check_target(url, allow_private=False)


def test_a_loopback_webhook_is_refused_without_the_setting(redis_client, database, blog,
                                                           receiver, notify_settings):
    add_webhook(database, SITE, receiver.url)
    notifier = make_notifier(redis_client, database, notify_settings(
        smtp_host="", notify_webhook_allow_private=False))
    store_comment(redis_client, database, cid(5))
    pump(notifier, lambda: notifier.queue.dead_letters())
    [letter] = notifier.queue.dead_letters()
    assert letter.attempts == "1" and "not a public address" in letter.error
    assert receiver.requests == []


def test_redirects_are_followed_and_checked_at_every_hop(redis_client, database, blog,
                                                         receiver, notify_settings):
    add_webhook(database, SITE, receiver.url + "/moved")
    add_webhook(database, SITE, receiver.url + "/to-metadata")

    def respond(request):
        if request.path == "/moved":
            return 308, {"Location": "/final"}
        if request.path == "/to-metadata":
            return 307, {"Location": "http://169.254.169.254/latest/meta-data/"}
        return 200, {}

    receiver.respond = respond
    notifier = make_notifier(redis_client, database, notify_settings(smtp_host=""))
    store_comment(redis_client, database, cid(6))
    pump(notifier, lambda: notifier.queue.dead_letters() and any(
        d.status == "delivered" for d in notifier.queue.recent()))
    assert sorted(request.path for request in receiver.requests) == \
        ["/final", "/moved", "/to-metadata"]
    [letter] = notifier.queue.dead_letters()
    assert "metadata" in letter.error


def test_webhook_cli_adds_lists_and_removes(database, blog, notify_settings, receiver):
    settings = notify_settings()
    env = {"OVATION_DATA_DIR": str(settings.data_dir), "OVATION_REDIS_URL": settings.redis_url,
           "OVATION_DATABASE_URL": settings.database_url}
    runner = CliRunner()
    refused = runner.invoke(cli.main.app, ["webhook", "add", SITE, receiver.url], env=env)
    assert refused.exit_code == 1 and "not a public address" in refused.output
    assert "Traceback" not in refused.output
    allowed = {**env, "OVATION_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "true"}
    added = runner.invoke(cli.main.app, ["webhook", "add", SITE, receiver.url, "--format",
                                         "slack", "--event", "new_post"], env=allowed)
    assert added.exit_code == 0, added.output
    assert "whsec_" in added.output
    bad = runner.invoke(cli.main.app, ["webhook", "add", SITE, receiver.url, "--event",
                                       "everything"], env=allowed)
    assert bad.exit_code == 1 and "unknown event" in bad.output
    listed = runner.invoke(cli.main.app, ["webhook", "list"], env=env)
    assert receiver.url in listed.output and "whsec_" not in listed.output
    assert "new_post" in listed.output
    webhook_id = json.loads(json.dumps(added.output.split()[2]))
    assert runner.invoke(cli.main.app, ["webhook", "remove", webhook_id], env=env).exit_code == 0
    missing = runner.invoke(cli.main.app, ["webhook", "remove", webhook_id], env=env)
    assert missing.exit_code == 1 and "No webhook" in missing.output
