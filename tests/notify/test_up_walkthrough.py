"""The issue's "done when", as a new user does it: `platformctl up` with SMTP settings pointing
at a local SMTP server (aiosmtpd on loopback); Ann's page is open (a WebSocket subscribed with
her visitor id), she comments asking for replies, Bob replies. The reply reaches her open page
at once and, after she follows the double opt-in link, her mailbox."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from tests.conftest import REPO, free_port, wait_http

ANN = "ann@example.org"


def start_up(data_dir, port: int, smtp_port: int, log) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    env.update(OVATION_SMTP_HOST="127.0.0.1", OVATION_SMTP_PORT=str(smtp_port),
               OVATION_SMTP_SECURITY="none", OVATION_PUBLIC_URL=f"http://127.0.0.1:{port}")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def eventually(condition, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return found


async def notification_frame(ws) -> dict:
    while True:  # the page also gets the comments themselves, live
        frame = json.loads(await ws.recv())
        if frame["type"] == "notification":
            return frame


@pytest.mark.slow
async def test_a_reply_reaches_the_author_by_email_and_in_the_open_page(tmp_path, smtp_server):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mails = smtp_server.recorder
    log_path = tmp_path / "up.log"
    with open(log_path, "ab") as log:
        up = start_up(tmp_path / "data", port, smtp_server.port, log)
    try:
        await asyncio.to_thread(wait_http, url + "/readyz", 90)
        live = f"ws://127.0.0.1:{port}/api/v1/sites/demo/live"
        async with websockets.connect(live, additional_headers={"Origin": url}) as ann_page, \
                httpx.AsyncClient(base_url=url, headers={"Origin": url}, timeout=20) as http:
            assert json.loads(await ann_page.recv())["type"] == "hello"
            await ann_page.send(json.dumps({"type": "subscribe", "paths": ["/walk"],
                                            "visitor": "ann-visitor-0001"}))
            assert json.loads(await ann_page.recv())["type"] == "subscribed"

            ann = await http.post("/api/v1/sites/demo/comments", json={
                "path": "/walk", "body": "Ann's comment", "visitor": "ann-visitor-0001",
                "author_name": "Ann", "author_email": ANN, "notify_replies": True})
            assert ann.status_code == 202, ann.text
            bob = await http.post("/api/v1/sites/demo/comments", json={
                "path": "/walk", "body": "Bob's reply", "visitor": "bob-visitor-0001",
                "author_name": "Bob", "parent_id": ann.json()["id"]})
            assert bob.status_code == 202, bob.text
            reply_key = f"reply:{bob.json()['id']}"

            pushed = await asyncio.wait_for(notification_frame(ann_page), 60)
            assert (pushed["kind"], pushed["idempotency_key"]) == ("reply", reply_key)
            assert pushed["message"].startswith("Bob replied to your comment")

            # Double opt-in: first a confirmation request, and the reply waits for it.
            [confirmation] = await eventually(lambda: mails.to(ANN), "the confirmation")
            assert confirmation["X-Ovation-Event"] == "confirm"
            text = confirmation.get_body(("plain",)).get_content()
            link = re.search(rf"{re.escape(url)}(/notifications/confirm\?token=\S+)", text)
            assert link, text
            assert (await http.get(link.group(1))).status_code == 200  # a page, no change
            confirmed = await http.post(link.group(1))
            assert confirmed.status_code == 200 and "Confirmed" in confirmed.text

            await eventually(lambda: len(mails.to(ANN)) == 2, "the reply e-mail")
            reply = mails.to(ANN)[1]
            assert reply["X-Ovation-Idempotency-Key"] == reply_key
            assert reply["Subject"].startswith("Bob replied to your comment")
            assert "Bob's reply" in reply.get_body(("plain",)).get_content()
            assert reply["List-Unsubscribe"].startswith(f"<{url}/notifications/unsubscribe?")
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert await asyncio.to_thread(up.wait, 60) == 0, log_path.read_text()
