"""Failures the fault-injection scenario found, each pinned down on its own.

1. While Redis restarted, posting, editing, deleting comments and reading threads answered 500
   `internal_error` with a traceback in the log, where interactions answered 503. Fixed at the
   web edge: Redis connection errors are 503 `service_unavailable` (web/errors.py).
2. While PostgreSQL was stopped, every webhook delivery (which reads the webhook's record)
   was logged as "failed unexpectedly" with a traceback, as a bug would be. It was retried
   all the same; now it is logged as the outage it is (appliance/workers/notifier.py).
3. A listener killed after storing a comment and before acknowledging it handles the comment
   again 30 s later. If the author had deleted it in between, the owner's notice went out as
   `pending_comment` under a second key, `pending_comment:ID`, so a receiver could not tell it
   from a new notification; and webhooks subscribed to `new_comment` never heard of the
   comment. The notice now keeps the kind of the status the comment was submitted with
   (appliance/workers/comment_handlers.py).
4. The soak's Redis kept the id of every delivery ever made in the queue's listing (a sorted
   set): the records expire after notify_keep_s, their ids stayed, about 120 bytes each, until
   someone ran `platformctl notifications purge`. The notifier now forgets them every hour
   (appliance/workers/notifier.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time

import httpx
import pytest

from appliance import events
from appliance.notify import keys
from appliance.notify.queue import Delivery
from appliance.services.sites import add_site
from appliance.storage import comment_store
from appliance.storage.database import open_database
from appliance.storage.site_store import get_site, update_site
from appliance.workers.comment_handlers import handle_comment
from appliance.workers.notifier import Notifier
from tests.conftest import free_port
from tests.reliability.rig import ORIGIN, OWNER, SITE, Rig


def test_comment_routes_answer_503_while_redis_is_down(tmp_path):
    rig = Rig(tmp_path, "sqlite")
    headers = {"Origin": ORIGIN}
    try:
        rig.start()
        comments = f"{rig.url('web0')}/api/v1/sites/{SITE}/comments"
        posted = httpx.post(comments, headers=headers, json={
            "path": "/p", "body": "Hello", "visitor": "visitor-0001"})
        assert posted.status_code == 202
        comment = posted.json()
        deadline = time.monotonic() + 30
        while not httpx.get(comments, params={"path": "/p"}, headers=headers).json()["total"]:
            assert time.monotonic() < deadline, "the listener did not store the comment"
            time.sleep(0.1)
        rig.stop_redis()
        token = {"edit_token": comment["edit_token"]}
        calls = [("POST", "", {"path": "/p", "body": "Again", "visitor": "visitor-0001"}),
                 ("PATCH", f"/{comment['id']}", {**token, "body": "Edited"}),
                 ("DELETE", f"/{comment['id']}", token),
                 ("POST", f"/{comment['id']}/vote", {"visitor": "visitor-0002", "vote": "up"})]
        for method, suffix, body in calls:
            response = httpx.request(method, comments + suffix, json=body, headers=headers)
            assert (method, suffix, response.status_code) == (method, suffix, 503)
            assert response.json()["error"]["code"] == "service_unavailable"
        thread = httpx.get(comments, params={"path": "/p"}, headers=headers)
        assert thread.status_code == 503
    finally:
        rig.stop()


def test_a_database_outage_during_a_delivery_is_retried_as_an_outage(redis_client,
                                                                    make_settings, caplog):
    settings = make_settings(f"postgresql://ovation@127.0.0.1:{free_port()}/gone")
    notifier = Notifier(redis_client, open_database(settings.database_url), settings)
    try:
        notifier.queue.add(Delivery(f"new_comment:{'a' * 32}", "webhook", "1", "blog",
                                    "new_comment"))
        [claimed] = notifier.queue.claim(1)
        with caplog.at_level(logging.INFO, logger="ovation.notifier"):
            assert notifier.deliver(claimed) == "retrying"
        assert [record.levelname for record in caplog.records] == ["WARNING"]
        assert "the database is not reachable" in caplog.records[0].getMessage()
        assert caplog.records[0].exc_info is None
    finally:
        notifier.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_comment_handled_again_is_notified_under_its_first_key(redis_client, database):
    add_site(database, SITE, [ORIGIN])
    update_site(database, dataclasses.replace(get_site(database, SITE), owner_email=OWNER))
    comment_id = "c" * 32
    event = {"id": comment_id, "site": SITE, "path": "/p", "body_markdown": "Hello",
             "status": "approved", "author_name": "Ann", "author_email": "",
             "visitor_hash": "a" * 32, "notify_replies": False, "parent_id": None,
             "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()}
    handle_comment(redis_client, database, 4, event)  # stored; the listener dies unacknowledged
    comment_store.set_status(database, [comment_id], "deleted")  # the author deletes it
    handle_comment(redis_client, database, 4, event)  # the next listener handles it again
    notices = [(fields["kind"], json.loads(fields["body"])["idempotency_key"])
               for _, fields in redis_client.xrange(events.NOTIFICATION_STREAM)]
    assert notices == [("new_comment", f"new_comment:{comment_id}")] * 2


def test_the_notifier_forgets_deliveries_finished_long_ago(redis_client, make_settings,
                                                            tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 'ovation.db'}", notify_keep_s=60)
    notifier = Notifier(redis_client, open_database(settings.database_url), settings)
    try:
        sent = Delivery(f"new_comment:{'a' * 32}", "webhook", "1", "blog", "new_comment")
        notifier.queue.add(sent)
        [claimed] = notifier.queue.claim(1)
        notifier.queue.complete(claimed)
        waiting = Delivery(f"new_comment:{'b' * 32}", "webhook", "1", "blog", "new_comment")
        notifier.queue.add(waiting)
        redis_client.delete(keys.delivery(sent.id))  # as Redis does after notify_keep_s
        later = time.time() + 120
        notifier.queue.clock = lambda: later
        notifier.housekeeping()
        assert redis_client.zrange(keys.ALL, 0, -1) == [waiting.id]  # waiting ones stay
    finally:
        notifier.close()
