"""Real processes: two web workers, a flusher flushing every second, many concurrent clients."""

from __future__ import annotations

import asyncio
import json
import random
import time

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from appliance.services.sites import add_site
from appliance.storage.models import Counter, Page
from tests.conftest import free_port, start_process, stop_process, wait_http

CLIENTS = 16
REQUESTS_PER_CLIENT = 60
PATHS = [f"/posts/{n}" for n in range(12)]


@pytest.fixture
def web_pair(settings, database, tmp_path):
    """Two `platformctl serve web` processes (as two hosts behind a balancer) and a flusher."""
    add_site(database, "blog", ["https://blog.example"])
    fast = settings.model_copy(update={"flush_interval_s": 1.0, "live_coalesce_ms": 100})
    ports = [free_port(), free_port()]
    processes = [start_process(fast.model_copy(update={"bind": f"127.0.0.1:{port}"}),
                               "serve", "web", log=tmp_path / f"web{i}.log")
                 for i, port in enumerate(ports)]
    flusher = start_process(fast, "serve", "flusher", log=tmp_path / "flusher.log")
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url in urls:
        wait_http(url + "/readyz")
    yield urls, flusher
    for process in [*processes, flusher]:
        stop_process(process)


def sql_totals(database) -> dict[tuple[str, str], int]:
    with database.connection_context():
        query = Counter.select(Page.path, Counter.reaction, Counter.total).join(Page).tuples()
        return {(path, reaction): total for path, reaction, total in query if total}


async def test_sql_totals_equal_acknowledged_interactions(web_pair, database):
    urls, flusher = web_pair
    acknowledged: dict[tuple[str, str], int] = {}

    async def client(number: int) -> None:
        rng = random.Random(number)
        async with httpx.AsyncClient(timeout=30) as http:
            for n in range(REQUESTS_PER_CLIENT):
                visitor = f"visitor-{number:02d}-{rng.randrange(8)}"
                reaction = rng.choice(["view", "like", "like", "applause", "applause"])
                body = {"path": rng.choice(PATHS), "reaction": reaction, "visitor": visitor,
                        "action": rng.choice(["add", "remove"]) if reaction == "like" else "add",
                        "amount": rng.randrange(1, 20) if reaction == "applause" else 1}
                response = await http.post(f"{urls[n % 2]}/api/v1/sites/blog/interactions",
                                           json=body)
                assert response.status_code == 200, response.text
                result = response.json()
                key = (result["path"], reaction)
                acknowledged[key] = acknowledged.get(key, 0) + result["applied"]

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    await asyncio.sleep(1.5)  # several flushes happened meanwhile; SIGTERM flushes the rest
    assert stop_process(flusher) == 0
    assert sql_totals(database) == {key: value for key, value in acknowledged.items() if value}
    # And the live totals any worker reports agree with SQL.
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{urls[1]}/api/v1/sites/blog/totals/batch",
                                   json={"paths": PATHS})
    for page in response.json()["pages"]:
        for reaction, total in page["totals"].items():
            assert acknowledged.get((page["path"], reaction), 0) == total


async def test_live_totals_reach_subscribers_on_every_worker(web_pair):
    urls, _ = web_pair
    sockets = []
    for url in urls:
        ws = await websockets.connect(url.replace("http", "ws") + "/api/v1/sites/blog/live",
                                      origin="https://blog.example")
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "subscribe", "paths": ["/live-post/"]}))
        subscribed = json.loads(await ws.recv())
        assert subscribed["pages"][0]["totals"]["like"] == 0
        sockets.append(ws)
    async with httpx.AsyncClient() as http:
        # Five likes; how many pushes carry them depends on the machine's speed (coalescing is
        # counted in tests/web/test_live_socket.py): every worker's subscribers get to 5.
        for n in range(5):
            response = await http.post(f"{urls[0]}/api/v1/sites/blog/interactions", json={
                "path": "/live-post", "reaction": "like", "visitor": f"visitor-live-{n}"},
                headers={"Origin": "https://blog.example"})
            assert response.status_code == 200
    for ws in sockets:
        frames = []
        while not frames or frames[-1]["totals"]["like"] < 5:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
            assert frame["type"] == "totals" and frame["path"] == "/live-post"
            frames.append(frame)
        assert [f["totals"]["like"] for f in frames] == sorted(f["totals"]["like"] for f in frames)
        await ws.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQL plays no part
async def test_a_page_followed_on_one_worker_is_pushed_when_its_changes_reach_another(web_pair):
    """Changes to a page nobody watches are not pushed: the mark that a socket follows the
    page must reach every worker (it is in Redis), not only the socket's own."""
    urls, _ = web_pair
    live = urls[1].replace("http", "ws") + "/api/v1/sites/blog/live"
    async with websockets.connect(live, origin="https://blog.example") as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "subscribe", "paths": ["/watched-elsewhere"]}))
        assert json.loads(await ws.recv())["pages"][0]["totals"]["like"] == 0
        async with httpx.AsyncClient() as http:  # only ever the first worker
            response = await http.post(f"{urls[0]}/api/v1/sites/blog/interactions", json={
                "path": "/watched-elsewhere", "reaction": "like", "visitor": "visitor-far-1"})
            assert response.status_code == 200
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert frame == {"type": "totals", "path": "/watched-elsewhere",
                         "totals": {"view": 0, "like": 1, "applause": 0}}


async def test_foreign_origin_websocket_is_refused(web_pair):
    urls, _ = web_pair
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await websockets.connect(urls[0].replace("http", "ws") + "/api/v1/sites/blog/live",
                                 origin="https://evil.example")
    assert refused.value.response.status_code == 403


def metric_values(text: str) -> dict[str, float]:
    """The unlabelled samples of a /metrics answer, by name."""
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


async def metrics_once_settled(http: httpx.AsyncClient, urls: list[str], name: str,
                               wanted: float, timeout_s: float = 30.0) -> list[dict]:
    """Every worker's figures once each reports `wanted` for `name` (the flusher and the
    workers' WebSocket gauges write to Redis in the background; the deadline only bounds a
    failure on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while True:
        figures = [metric_values((await http.get(f"{url}/metrics")).text) for url in urls]
        if all(values.get(name) == wanted for values in figures):
            return figures
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} per worker: {[v.get(name) for v in figures]}, "
                                 f"wanted {wanted} on each")
        await asyncio.sleep(0.2)


async def test_metrics_agree_across_workers(web_pair):
    urls, _ = web_pair
    async with httpx.AsyncClient() as http:
        await http.post(f"{urls[0]}/api/v1/sites/blog/interactions",
                        json={"path": "/m", "reaction": "view", "visitor": "visitor-metrics"})
        await http.post(f"{urls[1]}/api/v1/sites/blog/interactions",
                        json={"path": "/m", "reaction": "view", "visitor": "visitor-metrics2"})
        bodies = [(await http.get(f"{url}/metrics")).text for url in urls]
        for body in bodies:
            assert 'ovation_interactions_total{reaction="view"} 2.0' in body
        # The flusher's figures too: whichever worker is asked, the same flushes.
        figures = await metrics_once_settled(http, urls, "ovation_pending_counters", 0)
    assert figures[0] == figures[1]
    assert figures[0]["ovation_flush_batches_total"] >= 1
    assert figures[0]["ovation_flush_rows_total"] >= 1  # the /m view counter
    assert figures[0]["ovation_flush_last_timestamp_seconds"] > 0


async def test_websocket_connections_are_counted_across_workers(web_pair):
    urls, _ = web_pair
    live = [url.replace("http", "ws") + "/api/v1/sites/blog/live" for url in urls]
    sockets = [await websockets.connect(address, origin="https://blog.example")
               for address in (live[0], live[0], live[1])]
    try:
        for ws in sockets:
            assert json.loads(await ws.recv())["type"] == "hello"
        async with httpx.AsyncClient() as http:
            await metrics_once_settled(http, urls, "ovation_websocket_connections", 3)
            await sockets.pop().close()  # the one on the second worker
            await metrics_once_settled(http, urls, "ovation_websocket_connections", 2)
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_comment_reaches_subscribers_of_its_page_on_another_worker(web_pair, settings,
                                                                           tmp_path):
    urls, _ = web_pair
    listener = start_process(settings, "serve", "listener", log=tmp_path / "listener.log")
    try:
        live = urls[1].replace("http", "ws") + "/api/v1/sites/blog/live"
        same_page = await websockets.connect(live, origin="https://blog.example")
        other_page = await websockets.connect(live, origin="https://blog.example")
        for ws, path in ((same_page, "/commented"), (other_page, "/elsewhere")):
            await ws.recv()  # hello
            await ws.send(json.dumps({"type": "subscribe", "paths": [path]}))
            await ws.recv()  # subscribed
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{urls[0]}/api/v1/sites/blog/comments", json={
                "path": "/commented/", "body": "Live *hello*", "visitor": "visitor-live-c"},
                headers={"Origin": "https://blog.example"})
        assert response.status_code == 202, response.text
        comment_id = response.json()["id"]
        frame = json.loads(await asyncio.wait_for(same_page.recv(), timeout=10))
        assert frame["type"] == "comment" and frame["comment"]["id"] == comment_id
        assert frame["comment"]["html"] == "<p>Live <em>hello</em></p>" and frame["count"] == 1
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(other_page.recv(), timeout=1.0)
        await same_page.close()
        await other_page.close()
    finally:
        stop_process(listener)
