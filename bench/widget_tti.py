"""Widget: time until it is interactive in headless Chromium on a page with 200 comments.

`platformctl up` (one web worker) on core 0. A site `blog` is added with `platformctl site add`
for a static blog served from another origin on loopback (a thread of this process), and 200
approved comments are posted through the API to one of its pages (the listener stores them;
the thread is read back until it holds all 200). Then Debian's Chromium, headless and driven by
Playwright from core 1 (it inherits this process's pinning), loads three pages of that blog in
alternation: the article without the widget, the article with the widget on a page that has no
comment, and the article with the widget on the page with 200 comments.

Each load starts in a fresh browser context (a new visitor, an empty HTTP cache) for the cold
series; the warm series reuses one context per page, primed by one uncounted load, so
widget.js comes from the browser's cache. Time is `performance.now()` in the page, i.e. since
navigation start. A script added before the page's own (Playwright's init script; widget.js is
not changed) watches the widget's shadow tree with a MutationObserver from the moment the
custom element is defined, and takes the widget as interactive when its like button is rendered
and enabled (the counts are painted in the same task) and its comment list shows what the
server sends in the first page of the thread (the "no comments yet" line for the empty
thread); the time reported is that of the first task after the next frame is painted, i.e. when
the reader sees it and a click would be handled. For the page without the widget the same is
taken after its load event. CPU time per load (Chromium's processes through CDP, the server's
from /proc) shows what the load cost apart from waiting for a shared core.

    .venv/bin/python -m bench.widget_tti [--loads 15] [--warm 5] [--page-sizes 50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.server
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    REPO,
    clean_environment,
    fmt_float,
    free_port,
    log,
    pin_self,
    table,
    usable_cores,
)
from bench.live_fanout import percentile
from bench.server import descendants, http_json, process_cpu_s, running_up

CHROMIUM = Path("/usr/bin/chromium")
# The flags the browser tests use (tests/browser/conftest.py).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
SITE = "blog"
COMMENTS = 200
TARGET_MS = 300.0
DEFAULT_PAGE_SIZE = 50  # OVATION_COMMENT_PAGE_SIZE's default: the widget's first page
LOAD_TIMEOUT_MS = 30_000

# Runs in every page before its own scripts. It only reads: the widget is found through its
# open shadow root, as a test would. `expect` (a meta tag of the bench page) says how many
# comments the widget's list must show: -1 for a page without the widget.
PROBE_JS = r"""
(() => {
  const marks = window.__benchMarks = {};
  const now = () => performance.now();
  const expected = () => {
    const meta = document.querySelector('meta[name="bench-expect"]');
    return meta ? Number(meta.content) : -1;
  };
  const afterPaint = name => requestAnimationFrame(() => {
    // A message posted from an animation frame is handled after that frame is painted.
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      marks[name] = now();
      performance.mark("bench-" + name);  // bounds the trace's profile (see bench code)
    };
    channel.port2.postMessage(0);
  });
  addEventListener("load", () => {
    marks.load = now();
    if (expected() < 0) afterPaint("interactive");
  });
  const check = host => {
    const want = expected(), root = host.shadowRoot;
    const like = root.querySelector('button[data-reaction="like"]');
    const bar = !!like && !like.disabled && like.getAttribute("aria-disabled") != "true";
    const empty = root.querySelector("p.gone");
    const shown = root.querySelectorAll("ol.thread > li").length;
    const thread = want == 0 ? !!empty && !empty.hidden : shown >= want;
    if (bar && marks.bar == null) marks.bar = now();
    if (thread && marks.thread == null) marks.thread = now();
    return bar && thread;
  };
  // define() upgrades the element (its shadow root is built) before this promise settles;
  // from then on every change of the shadow tree is checked when the task making it ends.
  customElements.whenDefined("ovation-widget").then(() => {
    marks.defined = now();
    const host = document.querySelector("ovation-widget");
    if (!host || !host.shadowRoot) return;
    const done = () => { marks.ready = now(); afterPaint("interactive"); };
    const watch = new MutationObserver(() => {
      if (check(host)) { watch.disconnect(); done(); }
    });
    watch.observe(host.shadowRoot, { subtree: true, childList: true, attributes: true,
                                     attributeFilter: ["hidden", "disabled", "aria-disabled"] });
    if (check(host)) { watch.disconnect(); done(); }
    const live = new MutationObserver(() => {
      if (host.getAttribute("data-state") == "live") { marks.live = now(); live.disconnect(); }
    });
    live.observe(host, { attributes: true, attributeFilter: ["data-state"] });
  });
})();
"""

# Resolves once the probe has taken the interactive moment; rejects after `timeout` ms.
WAIT_JS = r"""
timeout => new Promise((resolve, reject) => {
  const started = performance.now();
  const poll = () => {
    const marks = window.__benchMarks;
    if (marks && marks.interactive != null) resolve(marks.interactive);
    else if (performance.now() - started > timeout) reject(new Error("not interactive in time"));
    else setTimeout(poll, 20);
  };
  poll();
})
"""

# What the page's Resource Timing says about each request of the widget (startTime and
# responseEnd are given for cross-origin requests too).
RESOURCES_JS = r"""
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const pick = part => {
    const entry = performance.getEntriesByType("resource").find(e => e.name.includes(part));
    return entry ? { start: entry.startTime, end: entry.responseEnd } : null;
  };
  return { marks: window.__benchMarks, html: nav ? nav.responseEnd : null,
           dcl: nav ? nav.domContentLoadedEventEnd : null,
           script: pick("/widget.js"), config: pick("/config"), view: pick("/interactions"),
           comments: pick("/comments?") };
}
"""

ARTICLE = "".join(
    f"<p>Paragraph {n} of a blog post: some words about a subject, long enough to wrap over a "
    f"few lines on a narrow screen, with a <a href=\"#p{n}\">link</a> and <em>emphasis</em>."
    "</p>" for n in range(1, 13))


@dataclass
class Page:
    """One kind of page the browser loads."""

    name: str
    label: str
    widget_path: str | None  # None: the article without the widget
    expect: int  # comments the widget's list must show; -1 without the widget


@dataclass
class Load:
    """The timings of one load, in ms since navigation start."""

    interactive: float
    marks: dict
    resources: dict
    metrics: dict  # the renderer's Performance.getMetrics (seconds)
    cpu: dict  # CPU seconds from navigation to interactive: renderer, chromium, server
    profile: dict  # main-thread CPU ms per activity, for a traced load


class StaticBlog:
    """Plain HTML files served from another origin on loopback, as a static blog host would."""

    def __init__(self, root: Path, ovation_url: str) -> None:
        self.root = root
        self.ovation_url = ovation_url
        handler = functools.partial(QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def write(self, page: Page) -> str:
        widget = (f'<ovation-widget path="{page.widget_path}"></ovation-widget>'
                  f'<script src="{self.ovation_url}/widget.js" data-site="{SITE}" async>'
                  "</script>" if page.widget_path else "")
        (self.root / f"{page.name}.html").write_text(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width">'
            f'<meta name="bench-expect" content="{page.expect}">'
            f'<link rel="icon" href="data:,"><title>{page.label}</title></head>'
            f"<body><main><article><h1>{page.label}</h1>{ARTICLE}</article>{widget}</main>"
            "</body></html>")
        return f"{self.url}/{page.name}.html"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def static_blog(ovation_url: str) -> Iterator[StaticBlog]:
    with tempfile.TemporaryDirectory(prefix="ovation-bench-blog-") as directory:
        blog = StaticBlog(Path(directory), ovation_url)
        try:
            yield blog
        finally:
            blog.close()


# A Chromium trace of one load tells where the renderer's main thread spent its CPU: each
# event's own thread time (its `tdur` less its children's), by the first rule that matches.
TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8",
                    "v8.execute", "toplevel", "blink", "loading", "blink.user_timing"]
ACTIVITIES = [
    ("garbage collection", ("GC", "Scavenge", "Sweep", "Mark")),
    ("JavaScript compile", ("Compile", "V8.Parse", "V8.PreParse", "v8.parse", "Deserialize")),
    ("HTML parsing", ("HTMLDocumentParser", "ParseHTML", "Tokeniz", "DocumentParser")),
    ("style (CSS parse, recalculation)", ("Style", "UpdateLayoutTree", "CSSParser")),
    ("layout (incl. text shaping)", ("Layout", "InlineNode", "Shape", "layout")),
    ("paint and compositing", ("Paint", "Layerize", "Compositing", "UpdateLifecycle", "cc::",
                               "BeginMainFrame", "Raster", "Layer")),
    ("JavaScript run (incl. DOM calls)", ("EvaluateScript", "v8.", "V8.", "FunctionCall",
                                          "Microtask", "TimerFire", "TimerBase", "EventDispatch",
                                          "CustomElement", "AnimationFrame", "AsyncTask",
                                          "ScriptRunner", "PendingScript", "Script", "Promise")),
]
OTHER_ACTIVITY = "other (tasks, IPC, loading)"


def classify(name: str) -> str:
    for activity, parts in ACTIVITIES:
        if any(part in name for part in parts):
            return activity
    return OTHER_ACTIVITY


def main_thread_profile(trace: bytes) -> dict[str, float]:
    """ms of main-thread CPU per activity, from navigation start to the probe's
    `bench-interactive` mark, in the renderer that made that mark."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    marks = [e for e in events if e.get("name") == "bench-interactive"]
    if not marks:
        raise RuntimeError("the trace has no bench-interactive mark")
    pid = marks[-1]["pid"]
    end = marks[-1]["ts"]
    starts = [e["ts"] for e in events if e.get("name") == "navigationStart"
              and e.get("pid") == pid and e["ts"] <= end]
    start = max(starts) if starts else min(e["ts"] for e in events if e.get("pid") == pid)
    main = {e["tid"] for e in events if e.get("pid") == pid and e.get("ph") == "M"
            and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"}
    spans = sorted((e for e in events if e.get("pid") == pid and e.get("tid") in main
                    and e.get("ph") == "X" and "tdur" in e and start <= e["ts"] <= end),
                   key=lambda e: (e["ts"], -e.get("dur", 0)))
    totals: dict[str, float] = {}
    stack: list[tuple[float, dict]] = []  # (end time, {event, its children's thread time})

    def close(item) -> None:
        event, children = item[1]["event"], item[1]["children"]
        own = max(0.0, event["tdur"] - children)
        activity = classify(event["name"])
        totals[activity] = totals.get(activity, 0.0) + own / 1000
        if stack:
            stack[-1][1]["children"] += event["tdur"]

    for event in spans:
        while stack and stack[-1][0] <= event["ts"]:
            close(stack.pop())
        stack.append((event["ts"] + event.get("dur", 0), {"event": event, "children": 0.0}))
    while stack:
        close(stack.pop())
    return totals


def add_site(data_dir: Path, origin: str) -> None:
    """`platformctl site add`, as a blog's owner would run it, on the running instance."""
    out = subprocess.run([sys.executable, "-m", "cli", "--data-dir", str(data_dir), "site",
                          "add", SITE, "--origin", origin, "--title", "A static blog"],
                         cwd=REPO, env=clean_environment(), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"platformctl site add failed: {out.stdout}{out.stderr}")


def approved_in_sql(database: Path, path: str) -> int:
    """Approved comments the listener has stored in SQL for `path` (normalised: no slash)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(
            "SELECT COUNT(*) FROM comment c JOIN page p ON p.id = c.page_id "
            "WHERE p.path = ? AND c.status = 'approved'", (path.rstrip("/"),)).fetchone()[0]
    finally:
        connection.close()


def seed_thread(url: str, database: Path, path: str, count: int) -> int:
    """Post `count` comments through the API; wait until the listener has stored them all in
    SQL and the thread serves them all; return the size in bytes of the widget's first read
    of it."""
    api = f"{url}/api/v1/sites/{SITE}"
    for number in range(count):
        status, body = http_json("POST", f"{api}/comments", {
            "path": path, "visitor": f"bench-tti-{number:06d}", "author_name": f"Reader {number}",
            "body": f"Comment number {number}: a **short** paragraph, with a [link]"
                    f"(https://example.com/{number}) and some words to render."})
        if status != 202:
            raise RuntimeError(f"comment answered {status}: {body}")
    deadline = time.monotonic() + 60
    query = urllib.parse.urlencode({"path": path, "sort": "oldest", "offset": 0,
                                    "visitor": "bench-tti-reader"})
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{api}/comments?{query}", timeout=30) as response:
            raw = response.read()
        if (json.loads(raw).get("total", 0) >= count
                and approved_in_sql(database, path) >= count):
            return len(raw)
        time.sleep(0.1)
    raise RuntimeError(f"the thread at {path} did not reach {count} stored and served "
                       "comments in 60 s")


@dataclass
class Harness:
    """The browser, and what tells how much CPU a load cost the browser and the server."""

    browser: object  # playwright Browser
    browser_cdp: object  # its browser-level CDP session (SystemInfo.getProcessInfo)
    server_pids: list[int]  # `platformctl up` and its children (found once: they stay)
    errors: list[str] = field(default_factory=list)

    async def cpu_snapshot(self) -> dict[tuple[str, int], float]:
        """Cumulative CPU seconds per (kind, pid): Chromium's processes by their type, and
        every process of the server under `server`."""
        info = await self.browser_cdp.send("SystemInfo.getProcessInfo")
        found = {("renderer" if p["type"] == "renderer" else "chromium", p["id"]): p["cpuTime"]
                 for p in info["processInfo"]}
        for pid in self.server_pids:
            found[("server", pid)] = process_cpu_s(pid)
        return found

    async def load(self, context, url: str, trace: bool = False) -> Load:
        """Open `url` in a new tab of `context` and time it until the widget is interactive;
        with `trace`, record a Chromium trace of it and profile the main thread from it."""
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        cdp = await context.new_cdp_session(page)
        await cdp.send("Performance.enable")
        profile: dict[str, float] = {}
        try:
            if trace:
                await self.browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
            before = await self.cpu_snapshot()
            await page.goto(url, wait_until="commit")
            # Wait inside the page (a timer there), not by polling it over CDP every few ms:
            # the browser process shares the core with the page being measured.
            await page.evaluate(WAIT_JS, LOAD_TIMEOUT_MS)
            after = await self.cpu_snapshot()
            if trace:
                profile = main_thread_profile(await self.browser.stop_tracing())
            found = await page.evaluate(RESOURCES_JS)
            metrics = {m["name"]: m["value"]
                       for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
        finally:
            await page.close()
        if self.errors:
            raise RuntimeError(f"the page threw: {self.errors}")
        cpu: dict[str, float] = {}
        for (kind, pid), seconds in after.items():
            cpu[kind] = cpu.get(kind, 0.0) + max(0.0, seconds - before.get((kind, pid), 0.0))
        return Load(found["marks"]["interactive"], found["marks"], found, metrics, cpu, profile)

    async def fresh_context(self):
        context = await self.browser.new_context()
        await context.add_init_script(PROBE_JS)
        return context


async def run_series(blog_urls: dict[str, str], pages: list[Page], loads: int, warm: int,
                     server_pid: int) -> dict[tuple[str, str], list[Load]]:
    """Cold then warm loads of every page, the pages alternating so that a busy moment of
    the shared machine hits them alike."""
    from playwright.async_api import async_playwright

    results: dict[tuple[str, str], list[Load]] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=CHROMIUM_FLAGS)
        harness = Harness(browser, await browser.new_browser_cdp_session(),
                          [server_pid, *descendants(server_pid)])
        try:
            for page in pages:  # one uncounted load each: the server's first reads
                context = await harness.fresh_context()
                await harness.load(context, blog_urls[page.name])
                await context.close()
            for number in range(loads):
                for page in pages:
                    context = await harness.fresh_context()
                    try:
                        load = await harness.load(context, blog_urls[page.name])
                    finally:
                        await context.close()
                    results.setdefault(("cold", page.name), []).append(load)
                log(f"cold load {number + 1}/{loads} of each page")
            for page in pages:  # one traced cold load each, for the main thread's profile
                context = await harness.fresh_context()
                try:
                    load = await harness.load(context, blog_urls[page.name], trace=True)
                finally:
                    await context.close()
                results.setdefault(("traced", page.name), []).append(load)
            log("one traced load of each page")
            if warm:
                contexts = {page.name: await harness.fresh_context() for page in pages}
                for page in pages:  # primes the context's cache; not counted
                    await harness.load(contexts[page.name], blog_urls[page.name])
                for _ in range(warm):
                    for page in pages:
                        load = await harness.load(contexts[page.name], blog_urls[page.name])
                        results.setdefault(("warm", page.name), []).append(load)
                log(f"{warm} warm loads of each page")
                for context in contexts.values():
                    await context.close()
        finally:
            await browser.close()
    return results


def measure_variant(page_size: int, loads: int, warm: int, server_core: int,
                    client_core: int) -> tuple[list[Page], dict, int, tuple[float, float]]:
    shown = min(COMMENTS, page_size)
    pages = [Page("plain", "Article without the widget", None, -1),
             Page("empty", "Widget, no comments", "/bench/tti-empty/", 0),
             Page("thread", f"Widget, {COMMENTS} comments", "/bench/tti-200/", shown)]
    env = {"OVATION_COMMENT_PAGE_SIZE": str(page_size)}
    with running_up(server_core, extra_env=env) as up, static_blog(up.url) as blog:
        add_site(up.data_dir, blog.url)
        started = time.monotonic()
        thread_bytes = seed_thread(up.url, up.data_dir / "ovation.db", pages[2].widget_path,
                                   COMMENTS)
        log(f"{COMMENTS} comments posted, stored and served in {time.monotonic() - started:.1f} s "
            f"(first page: {thread_bytes:,} bytes of JSON)")
        urls = {page.name: blog.write(page) for page in pages}
        load_before = os.getloadavg()[0]
        results = asyncio.run(run_series(urls, pages, loads, warm, up.process.pid))
        load_after = os.getloadavg()[0]
    return pages, results, thread_bytes, (load_before, load_after)


def ms(value: float | None) -> str:
    return "-" if value is None else fmt_float(value, 0)


def summary_rows(page_size: int, pages: list[Page], results: dict) -> list[list[str]]:
    rows = []
    for series in ("cold", "warm"):
        if (series, "plain") not in results:
            continue
        p50s = {page.name: percentile([x.interactive for x in results[(series, page.name)]], 0.5)
                for page in pages}
        for page in pages:
            times = [x.interactive for x in results[(series, page.name)]]
            p50, p90 = percentile(times, 0.5), percentile(times, 0.9)
            if page.expect < 0:
                versus, verdict = "baseline: its load event, painted", ""
            elif page.expect == 0:
                versus, verdict = f"+{p50 - p50s['plain']:,.0f} ms over the article", ""
            else:
                versus = (f"+{p50 - p50s['plain']:,.0f} ms over the article, "
                          f"{p50 - p50s['empty']:+,.0f} ms over the empty thread")
                verdict = ("yes" if p90 <= TARGET_MS else
                           f"p50 yes, p90 **no** (+{p90 - TARGET_MS:,.0f} ms)"
                           if p50 <= TARGET_MS else f"**no**: p50 +{p50 - TARGET_MS:,.0f} ms")
            label = page.label if page.expect != COMMENTS or page_size >= COMMENTS else \
                f"{page.label} ({page.expect} shown)"
            rows.append([f"{series}: {label}", len(times), ms(p50), ms(p90), ms(max(times)),
                         versus, verdict])
    return rows


def median_of(loads: list[Load], pick) -> float | None:
    values = [v for v in (pick(x) for x in loads) if v is not None]
    return statistics.median(values) if values else None


def breakdown_rows(pages: list[Page], results: dict) -> list[list[str]]:
    """Medians of where the time of a cold load goes, per page."""
    cold = {p.name: results[("cold", p.name)] for p in pages}

    def end(key: str):
        return lambda x: (x.resources.get(key) or {}).get("end")

    def start(key: str):
        return lambda x: (x.resources.get(key) or {}).get("start")

    def mark(key: str):
        return lambda x: x.marks.get(key)

    def metric(key: str):  # Performance.getMetrics gives seconds
        return lambda x: x.metrics.get(key, 0) * 1000

    def cpu(*kinds: str):
        return lambda x: sum(x.cpu.get(kind, 0) for kind in kinds) * 1000

    steps = [
        ("HTML received", lambda x: x.resources.get("html")),
        ("widget.js requested", start("script")),
        ("widget.js received", end("script")),
        ("DOMContentLoaded done", lambda x: x.resources.get("dcl")),
        ("load event", mark("load")),
        ("/comments requested", start("comments")),
        ("/config received", end("config")),
        ("view recorded (POST /interactions answered)", end("view")),
        ("/comments received", end("comments")),
        ("widget.js run (custom element defined)", mark("defined")),
        ("reactions bar in the DOM", mark("bar")),
        ("comment list in the DOM", mark("thread")),
        ("**interactive** (both, after the next paint)", mark("interactive")),
        ("WebSocket subscribed (`data-state=live`, may come later)", mark("live")),
        ("renderer main thread, wall time: JavaScript (CDP ScriptDuration)",
         metric("ScriptDuration")),
        ("... style recalculation (RecalcStyleDuration)", metric("RecalcStyleDuration")),
        ("... layout (LayoutDuration)", metric("LayoutDuration")),
        ("... all tasks (TaskDuration)", metric("TaskDuration")),
        ("CPU time, navigation to interactive: the page's renderer process", cpu("renderer")),
        ("... Chromium's other processes (browser, GPU, network)", cpu("chromium")),
        ("... all of Chromium: on its one core, a floor for the wall time", cpu("renderer",
                                                                              "chromium")),
        ("... the server (`up`: web, Redis, listener, flusher, notifier)", cpu("server")),
    ]
    return [[name, *(ms(median_of(cold[p.name], pick)) for p in pages)]
            for name, pick in steps]


def profile_rows(pages: list[Page], results: dict) -> list[list[str]]:
    """The traced load of each page: main-thread CPU per activity, then its total and the
    wall time the same load took."""
    traced = {p.name: results[("traced", p.name)][0] for p in pages}
    names = [activity for activity, _ in ACTIVITIES] + [OTHER_ACTIVITY]
    rows = [[name, *(ms(traced[p.name].profile.get(name, 0.0)) for p in pages)]
            for name in sorted(names, key=lambda n: -traced[pages[-1].name].profile.get(n, 0))]
    rows.append(["**main thread CPU, navigation to interactive**",
                 *(f"**{ms(sum(traced[p.name].profile.values()))}**" for p in pages)])
    rows.append(["the same load's wall time to interactive (traced: slower)",
                 *(ms(traced[p.name].interactive) for p in pages)])
    return rows


def run(loads: int, warm: int, page_sizes: list[int]) -> str:
    if not CHROMIUM.exists():
        raise SystemExit("Chromium is missing: run ./install.sh --test (Debian package chromium)")
    server_core, client_core = usable_cores()
    pin_self(client_core)  # Chromium, Playwright's driver and the static blog inherit it
    out = ["## Widget: time to interactive in headless Chromium", ""]
    out.append(
        f"`platformctl up` (SQLite, owned Redis, 1 web worker) on core {server_core}; Debian's "
        f"Chromium (headless, Playwright) on core {client_core}, loading a static blog page "
        f"from another loopback origin. Time since navigation start (`performance.now()`) "
        f"until the widget is interactive: its like button rendered and enabled with the "
        f"counts painted, and its comment list showing the thread's first page, taken after "
        f"the next frame is painted (a MutationObserver in a script of the page watches the "
        f"widget's shadow tree; widget.js is unchanged). Cold: each load in a fresh browser "
        f"context (new visitor, empty cache); warm: one context per page, widget.js cached. "
        f"The three pages alternate. The thread: {COMMENTS} approved comments posted through "
        f"the API; the widget reads "
        f"the first page of it (`OVATION_COMMENT_PAGE_SIZE`, {DEFAULT_PAGE_SIZE} by default, "
        f"the rest behind \"Load more\"). Loopback has no network latency: a reader's round "
        f"trips come on top (the widget needs two after the HTML: widget.js, then its three "
        f"API reads in parallel). Target: interactive within {TARGET_MS:.0f} ms on the "
        f"{COMMENTS}-comment page (judged on p90 here).")
    for page_size in page_sizes:
        log(f"variant: comment page size {page_size}")
        pages, results, thread_bytes, load = measure_variant(page_size, loads, warm,
                                                             server_core, client_core)
        shown = min(COMMENTS, page_size)
        title = ("default page size: the widget shows the first "
                 f"{shown} of {COMMENTS}" if page_size == DEFAULT_PAGE_SIZE else
                 f"`OVATION_COMMENT_PAGE_SIZE={page_size}`: the widget shows {shown} of "
                 f"{COMMENTS}")
        out += ["", f"### {title[0].upper()}{title[1:]}", "",
                f"Load average (1 minute) before and after these loads: {load[0]:.1f} and "
                f"{load[1]:.1f} (2 cores; above about 2, other work waits for the same cores "
                f"and every wall time below stretches).", ""]
        out.append(table(["series: page", "loads", "p50 ms", "p90 ms", "max ms",
                          "p50 against baseline", f"<= {TARGET_MS:.0f} ms?"],
                         summary_rows(page_size, pages, results), "lrrrrll"))
        out += ["", f"Where the time of a cold load goes (medians of the cold loads: moments "
                    f"in ms since navigation start, then durations in ms; the first read of the "
                    f"{COMMENTS}-comment thread is {thread_bytes:,} bytes of JSON before "
                    f"compression). Wall times stretch when other work takes the core; CPU "
                    f"times much less so.", ""]
        out.append(table(["step (ms)", *(p.label for p in pages)],
                         breakdown_rows(pages, results), "lrrr"))
        out += ["", "The renderer's main thread, by activity: CPU time (thread time, so waiting "
                    "for the core is not in it) from a Chromium trace of one more cold load of "
                    "each page, navigation start to interactive. Each trace event's own time, "
                    "without its children's; JavaScript includes the DOM calls it makes. "
                    "Tracing itself adds some.", ""]
        out.append(table(["activity (ms of CPU)", *(p.label for p in pages)],
                         profile_rows(pages, results), "lrrr"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=15, help="cold loads of each page [15]")
    parser.add_argument("--warm", type=int, default=5, help="warm loads of each page [5]")
    parser.add_argument("--page-sizes", default=f"{DEFAULT_PAGE_SIZE},{COMMENTS}",
                        help="OVATION_COMMENT_PAGE_SIZE values, one server each [50,200]")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.page_sizes.split(",") if size.strip()]
    if args.loads < 1 or args.warm < 0 or not sizes:
        parser.error("--loads must be >= 1, --warm >= 0, and --page-sizes not empty")
    print(run(args.loads, args.warm, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
