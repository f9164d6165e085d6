"""Rendering is a pure function of a snapshot: sizes, empty states, huge numbers, hostile text."""

from __future__ import annotations

import io
import re

import pytest
from rich.cells import cell_len
from rich.console import Console

from appliance.dashboard.inert import inert
from appliance.dashboard.render import compact, natural_height, render, size, sparkline
from appliance.dashboard.snapshot import (
    CommentLine,
    DashboardSnapshot,
    DeliveryFigures,
    FlushFigures,
    PageCount,
    ServiceStatus,
    StorageFigures,
    StreamFigures,
)
from tests.dashboard.conftest import HOSTILE_NAME, HOSTILE_TEXT

NOW = 1_700_000_000.0
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the only sequence rich itself emits here: colours


def empty() -> DashboardSnapshot:
    return DashboardSnapshot(collected_at=NOW, instance="http://127.0.0.1:8700",
                             day="2023-11-14", bucket_s=10)


def busy(**changes) -> DashboardSnapshot:
    values = dict(
        collected_at=NOW, instance="http://127.0.0.1:8700", day="2023-11-14", bucket_s=10,
        services=[ServiceStatus("web", "running", "0.1.0", "pid 12 · up 5m"),
                  ServiceStatus("flusher", "failed", "", ""),
                  ServiceStatus("database", "ok", "SQLite 3.40.1", "sqlite:////srv/o.db")],
        rates={"view": 12.5, "like": 0.4},
        rate_series={"view": list(range(60)), "like": [0, 1] * 30, "applause": [0] * 60},
        today={"view": 4321, "like": 99, "applause": 7}, unique_visitors_today=1234,
        websocket_connections=17,
        top_pages_now=[PageCount("blog", f"/now-{index}", 100 - index) for index in range(10)],
        top_pages_today=[PageCount("blog", "/today", 999, "A title")],
        comments_by_status={"approved": 10, "pending": 3},
        latest_comments=[CommentLine(f"{index:032x}", "blog", "/post", f"Reader {index}",
                                     f"Comment number {index}", "approved", NOW - 60 * index)
                         for index in range(8)],
        flush=FlushFigures(NOW - 4, 12, 0.0125, 40, 1, "", 5),
        streams=[StreamFigures("ov:stream:notifications", 5, 2, 3, 1, 4, 1),
                 StreamFigures("ov:stream:submissions")],
        deliveries=DeliveryFigures(queued=6, failed_attempts=2, delivered=50, dead=1),
        storage=StorageFigures(3 * 2**20, 4 * 2**20, 0, 321, 5 * 2**20, "SQLite 3.40.1"))
    values.update(changes)
    return DashboardSnapshot(**values)


def draw(snapshot: DashboardSnapshot, width: int, height: int, colour: bool = False,
         live: bool = True) -> str:
    console = Console(width=width, height=height, record=True, force_terminal=colour,
                      color_system="truecolor" if colour else None, file=io.StringIO())
    console.print(render(snapshot, width, height, live=live), height=height)
    return console.export_text(styles=colour)


@pytest.mark.parametrize("width,height", [(20, 3), (40, 10), (80, 24), (100, 40), (109, 30),
                                          (110, 30), (160, 50), (250, 80)])
@pytest.mark.parametrize("build", [empty, busy], ids=["empty", "busy"])
def test_the_screen_fills_the_terminal_exactly(build, width, height):
    lines = draw(build(), width, height).splitlines()
    assert len(lines) == height
    assert all(cell_len(line) <= width for line in lines)
    assert lines[0].startswith("Ovation dashboard"[:width])


def test_a_large_terminal_shows_every_panel():
    text = draw(busy(), 160, 50)
    for title in ("Services", "Interactions", "Top pages, last 5 minutes", "Top pages today",
                  "Latest comments", "Flush", "Queues", "Storage"):
        assert title in text, title
    assert "3 awaiting moderation" in text
    assert "4,321" in text and "12/s" in text and "1,234" in text  # today, rate, visitors
    assert "/now-0" in text and "/now-9" in text and "A title" in text
    assert "Reader 7" in text
    assert "4s ago" in text and "12 in 12.5 ms" in text
    assert "notifications" in text and "deliveries" in text and "50 delivered" in text
    assert "3.0 MiB" in text and "5.0 MiB" in text
    assert "q or Ctrl-C quits" in text


def test_a_small_terminal_keeps_the_most_important_panels_and_says_what_is_left_out():
    text = draw(busy(), 80, 24)
    assert "Interactions" in text and "Services" in text
    assert "Storage" not in text
    assert "more panels: widen or heighten the terminal" in text


def test_a_tiny_terminal_asks_for_more_room():
    assert "Enlarge the terminal" in draw(busy(), 60, 5)


def test_empty_states_say_so():
    text = draw(empty(), 160, 50)
    assert "no interactions yet today" in text
    assert "no interactions in the last 5 minutes" in text
    assert "no comments yet" in text
    assert "none awaiting moderation" in text
    assert "none yet" in text  # no flush


def test_natural_height_shows_everything_for_a_file(tmp_path):
    for width in (80, 160):
        snapshot = busy()
        height = natural_height(snapshot, width)
        text = draw(snapshot, width, height, live=False)
        assert "more panels" not in text and "Storage" in text and "Top pages today" in text
        assert "one snapshot" in text


def test_huge_numbers_stay_in_their_columns():
    huge = 10 ** 30
    snapshot = busy(today={"view": huge, "like": 2 ** 63}, unique_visitors_today=huge,
                    rates={"view": 1e12}, websocket_connections=huge,
                    top_pages_now=[PageCount("blog", "/big", huge)],
                    comments_by_status={"pending": huge},
                    flush=FlushFigures(NOW - 10 ** 9, huge, 1e6, huge, huge, "", huge),
                    storage=StorageFigures(2 ** 80, 2 ** 80, 2 ** 80, huge, 2 ** 90))
    for width, height in ((80, 24), (160, 50)):
        lines = draw(snapshot, width, height).splitlines()
        assert len(lines) == height and all(cell_len(line) <= width for line in lines)
    text = draw(snapshot, 160, 50)
    assert "9.22E" in text  # 2**63 likes
    assert "1,000,000Y" in text  # 10**30 views, still one short cell
    assert "awaiting moderation" in text


def test_number_formats():
    assert compact(999_999) == "999,999"
    assert compact(1_234_567) == "1.23M"
    assert compact(45_600_000_000) == "45.6G"
    assert compact(10 ** 30).endswith("Y")
    assert compact(999_600_000) == "1G" and compact(999_400_000) == "999M"
    assert size(None) == "—" and size(512) == "512 B" and size(3 * 2 ** 20) == "3.0 MiB"


def test_sparkline_scales_to_its_peak_and_its_width():
    assert sparkline([0, 0, 0], 10) == "▁▁▁"
    assert sparkline([0, 5, 10], 10) == "▁▅█"
    assert sparkline(list(range(100)), 8) == sparkline(list(range(92, 100)), 8)
    assert len(sparkline(list(range(100)), 8)) == 8
    assert sparkline([1, 2], 0) == ""


def hostile() -> DashboardSnapshot:
    return busy(
        latest_comments=[CommentLine("e" * 32, "blog", "/x\x1b[2J", HOSTILE_NAME, HOSTILE_TEXT,
                                     "pending", NOW)],
        top_pages_now=[PageCount("blog", "/[red]p[/red]\x1b]8;;https://evil\x07", 3,
                                 "Title \x1b[31m[link=https://evil]x[/link]")],
        services=[ServiceStatus("web (HTTP)", "down", "", "error \x1b[1m[bold]x[/bold]")],
        errors=["database: \x1b[2J[red]gone[/red]"])


@pytest.mark.parametrize("width,height", [(80, 24), (160, 50)])
def test_text_from_users_reaches_the_terminal_inert(width, height):
    raw = draw(hostile(), width, height, colour=True)
    without_colours = SGR.sub("", raw)
    for control in ("\x1b", "\x9b", "\x07", "\u202e", "\x08"):
        assert control not in without_colours, repr(control)
    plain = draw(hostile(), 400, 50)  # wide enough that nothing is cut short
    assert "[red]markup[/red]" in plain  # markup is shown literally, not applied
    assert "[link=https://evil.example]click[/link]" in plain
    assert "\\x1b[31mred" in plain and "\\x9b2J" in plain and "\\u202e" in plain
    assert "Mallory \\x1b[5m[blink]name[/blink]" in plain
    assert "[red]gone[/red]" in plain


def test_inert_escapes_controls_and_keeps_ordinary_text():
    assert inert("Zoë — naïve 👍 [b]") == "Zoë — naïve 👍 [b]"
    assert inert("a\nb\tc\r\x00") == "a b c\\x0d\\x00"
    assert inert("\u2067x\u2069\u200b") == "\\u2067x\\u2069\\u200b"
    assert inert("x" * 50, 10) == "x" * 9 + "…"
    assert inert(None) == ""
