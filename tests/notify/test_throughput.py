"""How the notifier keeps deliveries moving: a slow receiver holds up one thread, not a pass.

The notifier used to claim one delivery per thread and wait for all of them before claiming
more, so a webhook that took its time stopped every other delivery until it answered (found
measuring the notifier after a 30-minute soak delivered 600 of 6,438 comments' e-mails)."""

from __future__ import annotations

import threading
import time

from appliance.notify import subscriptions as subs
from appliance.notify.queue import Delivery
from tests.notify.conftest import OWNER, SITE, SQLITE_ONLY, cid, make_notifier


@SQLITE_ONLY
def test_a_slow_receiver_holds_up_one_thread_only(redis_client, database, blog, receiver,
                                                  smtp_server, notify_settings):
    webhook = subs.add_webhook(database, SITE, receiver.url)
    mails = 6
    seen_when_answering: list[int] = []
    done = threading.Event()

    def respond(_request):
        # The webhook answers only once the e-mails queued after it went out (or the guard
        # ends: then the e-mails waited for the webhook, which is what this test forbids).
        deadline = time.monotonic() + 20
        while len(smtp_server.recorder.messages) < mails and time.monotonic() < deadline:
            if done.wait(0.02):
                break
        seen_when_answering.append(len(smtp_server.recorder.messages))
        return 200, {}

    receiver.respond = respond
    notifier = make_notifier(redis_client, database, notify_settings(
        notify_concurrency=2, notify_timeout_s=30, notify_email_cap_per_hour=1000))
    try:
        notifier.queue.add(Delivery(f"new_comment:{cid(1)}", "webhook", str(webhook.id), SITE,
                                    "new_comment"))  # due first: claimed first
        for n in range(2, 2 + mails):
            notifier.queue.add_email(Delivery(f"new_comment:{cid(n)}", "email", OWNER, SITE,
                                              "new_comment", list_name="owner"))
        assert notifier.run_once(block_ms=20) == 1 + mails  # one pass: all of them
    finally:
        done.set()
        notifier.close()
    assert seen_when_answering == [mails]  # the other thread sent every e-mail meanwhile
    assert {d.status for d in notifier.queue.recent()} == {"delivered"}
