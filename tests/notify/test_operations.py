"""Operating notifications: the real notifier process killed mid-delivery, the CLI, /metrics,
and the subscription tables on both databases."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import cli.main
from appliance.notify import subscriptions as subs
from tests.conftest import start_process, stop_process
from tests.notify.conftest import (
    SITE,
    SQLITE_ONLY,
    cid,
    make_notifier,
    pump,
    store_comment,
)
from web.app import create_app


def cli_env(settings) -> dict[str, str]:
    return {"OVATION_DATA_DIR": str(settings.data_dir), "OVATION_REDIS_URL": settings.redis_url,
            "OVATION_DATABASE_URL": settings.database_url}


def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@SQLITE_ONLY
@pytest.mark.slow
def test_a_notifier_killed_mid_delivery_delivers_after_restart(
        redis_client, database, blog, receiver, notify_settings, tmp_path):
    settings = notify_settings(smtp_host="", notify_timeout_s=1.0)  # claims last 5 s
    subs.add_webhook(database, SITE, receiver.url)
    in_flight, release = threading.Event(), threading.Event()

    def respond(_request):
        if len(receiver.requests) == 1:  # hold the first request: the notifier is mid-delivery
            in_flight.set()
            release.wait(10)
        return 200, {}

    receiver.respond = respond
    log = tmp_path / "notifier.log"
    notifier = start_process(settings, "serve", "notifier", log=log)
    try:
        store_comment(redis_client, database, cid(1))
        assert in_flight.wait(20), log.read_text()
        os.killpg(notifier.pid, signal.SIGKILL)
        notifier.wait(10)
    finally:
        release.set()
    notifier = start_process(settings, "serve", "notifier", log=log)
    try:
        wait_for(lambda: len(receiver.requests) >= 2)
        wait_for(lambda: redis_client.hget("ov:{n}:stats", "delivered:webhook") == "1")
    finally:
        assert stop_process(notifier) == 0, log.read_text()
    assert len(receiver.requests) == 2  # at least once: delivered again after the crash...
    assert receiver.unique_keys() == {f"new_comment:{cid(1)}"}  # ...and recognisable


@SQLITE_ONLY
def test_several_notifiers_share_the_work(redis_client, database, blog, receiver,
                                          notify_settings):
    """Two notifiers on one Redis: the consumer group splits the events between them, the
    leases split the deliveries, and nothing is sent twice."""
    subs.add_webhook(database, SITE, receiver.url)
    settings = notify_settings(smtp_host="", notify_concurrency=2)
    first, second = (make_notifier(redis_client, database, settings) for _ in range(2))
    first.consumer.consumer, second.consumer.consumer = "notifier-1", "notifier-2"
    first.consumer.batch = second.consumer.batch = 2
    for n in range(40, 44):
        store_comment(redis_client, database, cid(n))
    assert first.consumer.run_once() == 2 and second.consumer.run_once() == 2
    assert first.deliver_due() == 2 and second.deliver_due() == 2
    assert first.deliver_due() == 0 and second.deliver_due() == 0
    assert sorted(request.headers["ovation-idempotency-key"] for request in receiver.requests) \
        == [f"new_comment:{cid(n)}" for n in range(40, 44)]


@SQLITE_ONLY
def test_cli_lists_retries_and_purges(redis_client, database, blog, receiver, smtp_server,
                                      notify_settings):
    settings = notify_settings(notify_max_attempts=5, notify_retry_base_s=60)
    subs.add_webhook(database, SITE, receiver.url)
    receiver.respond = lambda _request: (503, {})
    notifier = make_notifier(redis_client, database, settings)
    store_comment(redis_client, database, cid(2))
    pump(notifier, lambda: smtp_server.recorder.messages and receiver.requests)
    runner, env = CliRunner(), cli_env(settings)

    everything = runner.invoke(cli.main.app, ["notifications", "list"], env=env)
    assert everything.exit_code == 0, everything.output
    assert "delivered" in everything.output and "retrying" in everything.output
    failed = runner.invoke(cli.main.app, ["notifications", "list", "--failed"], env=env)
    assert "1 delivery" in failed.output and "retrying" in failed.output
    [waiting] = notifier.queue.recent(statuses=("retrying",))
    assert waiting.id in failed.output

    receiver.respond = lambda _request: (200, {})
    now = runner.invoke(cli.main.app, ["notifications", "retry", waiting.id], env=env)
    assert now.exit_code == 0 and "requeued" in now.output
    pump(notifier, lambda: notifier.queue.get(waiting.id).status == "delivered")
    again = runner.invoke(cli.main.app, ["notifications", "retry", waiting.id], env=env)
    assert again.exit_code == 1 and "is delivered" in again.output
    unknown = runner.invoke(cli.main.app, ["notifications", "retry", "nope"], env=env)
    assert unknown.exit_code == 1 and "No notification" in unknown.output
    both = runner.invoke(cli.main.app, ["notifications", "list", "--failed", "--dead"], env=env)
    assert both.exit_code == 2
    neither = runner.invoke(cli.main.app, ["notifications", "retry"], env=env)
    assert neither.exit_code == 2

    purged = runner.invoke(cli.main.app, ["notifications", "purge"], env=env)
    assert purged.exit_code == 0 and "Purged 2 deliveries" in purged.output
    assert notifier.queue.recent() == []


@SQLITE_ONLY
async def test_metrics_show_delivery_figures(redis_client, database, blog, registry,
                                             smtp_server, notify_settings):
    settings = notify_settings()
    notifier = make_notifier(redis_client, database, settings)
    store_comment(redis_client, database, cid(3))
    pump(notifier, lambda: smtp_server.recorder.messages)
    app = create_app(settings, registry)
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with app.test_app() as test_app:
        response = await test_app.test_client().get("/metrics")
        text = await response.get_data(as_text=True)
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    assert samples[("ovation_notifications_delivered_total", (("channel", "email"),))] == 1
    assert samples[("ovation_notifications_enqueued_total", (("channel", "email"),))] == 1
    assert samples[("ovation_notifications_queued", ())] == 0
    assert samples[("ovation_notifications_dead_letters", ())] == 0


def test_subscriptions_on_both_databases(database, blog):
    address = "Ann@Example.org"
    assert subs.subscription_status(database, SITE, address, "replies") is None
    assert subs.set_status(database, SITE, address, "replies", "pending") is None
    assert subs.set_status(database, SITE, address, "replies", "confirmed") == "pending"
    # a new request does not undo a confirmation
    assert subs.set_status(database, SITE, address, "replies", "pending",
                           only_from=("unsubscribed",)) == "confirmed"
    assert subs.subscription_status(database, SITE, "ann@example.org", "replies") == "confirmed"
    subs.set_status(database, SITE, "bob@example.org", "posts", "confirmed")
    subs.set_status(database, SITE, "cy@example.org", "posts", "unsubscribed")
    assert subs.confirmed_addresses(database, SITE, "posts") == ["bob@example.org"]
    hook = subs.add_webhook(database, SITE, "https://hooks.example/x", "discord",
                            ["reply", "new_post"])
    assert hook.wants("reply") and not hook.wants("new_comment")
    assert [h.url for h in subs.list_webhooks(database, SITE)] == ["https://hooks.example/x"]
    assert subs.get_webhook(database, hook.id).secret == hook.secret
    subs.remove_webhook(database, hook.id)
    assert subs.list_webhooks(database) == []
