"""Draws a `DashboardSnapshot` for a terminal of a given size: a pure function, no I/O.

Everything that came from users or from outside (comment text, names, paths, titles, error
messages, URLs) goes through `inert` into `rich.text.Text`, never into markup, so neither
terminal escape sequences nor rich markup from a comment can reach the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich import box
from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from appliance.dashboard.inert import inert
from appliance.dashboard.snapshot import DashboardSnapshot, PageCount, ServiceStatus

WIDE_MIN_COLUMNS = 110  # below this, panels stack in one column
WIDE_BOTTOM_ROWS = 7  # flush, queues and storage, side by side
SPARK_LEVELS = "▂▃▄▅▆▇█"
STATE_STYLES = {"ok": "green", "running": "green", "active": "green", "degraded": "yellow",
                "activating": "yellow", "deactivating": "yellow", "unknown": "dim"}
STATUS_STYLES = {"pending": "bold black on yellow", "approved": "green", "spam": "red",
                 "rejected": "red", "deleted": "dim"}


# -- numbers ---------------------------------------------------------------------------------

def compact(value: float) -> str:
    """A count that fits a column: 999,999 in full, then 1.23M, 45.6G, ... (3 digits)."""
    value = float(value)
    if abs(value) < 1_000_000:
        return f"{value:,.0f}"
    units = ("M", "G", "T", "P", "E", "Z", "Y")
    scaled, index = value / 1e6, 0
    # 999.5 and up would print as "1e+03" with three digits: that is the next unit's 1.
    while abs(scaled) >= 999.5 and index < len(units) - 1:
        scaled, index = scaled / 1000, index + 1
    if abs(scaled) < 999.5:
        return f"{scaled:.3g}{units[index]}"
    return f"{scaled:,.0f}{units[index]}"


def rate(value: float) -> str:
    if value < 10:
        return f"{value:.1f}/s"
    return f"{compact(value)}/s"


def size(value: int | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(amount) < 1024 or unit == "PiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} PiB"


def age(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def sparkline(values: list[int], width: int) -> str:
    """The last `width` values as block characters, scaled to their own peak."""
    shown = values[-width:] if width > 0 else []
    peak = max(shown, default=0)
    if peak <= 0:
        return "▁" * len(shown)
    top = len(SPARK_LEVELS) - 1
    return "".join("▁" if value <= 0 else SPARK_LEVELS[min(top, round(value / peak * top))]
                   for value in shown)


# -- panels -----------------------------------------------------------------------------------

def _table(*columns: tuple[str, dict]) -> Table:
    table = Table(box=None, expand=True, pad_edge=False, show_edge=False, header_style="bold")
    for header, options in columns:
        table.add_column(header, no_wrap=True, overflow="ellipsis", **options)
    return table


def _panel(body: RenderableType, title: Text | str, subtitle: str = "") -> Panel:
    return Panel(body, title=title if isinstance(title, Text) else Text(title, style="bold"),
                 title_align="left", subtitle=Text(subtitle, style="dim") if subtitle else None,
                 subtitle_align="right", box=box.ROUNDED, padding=(0, 1))


def _state(status: ServiceStatus) -> Text:
    return Text(inert(status.state, 14), style=STATE_STYLES.get(status.state, "bold red"))


def services_panel(snapshot: DashboardSnapshot) -> Panel:
    table = _table(("service", {"width": 14}), ("state", {"width": 8}),
                   ("version", {"width": 16}), ("detail", {"ratio": 1}))
    for status in snapshot.services:
        table.add_row(Text(inert(status.name, 40)), _state(status),
                      Text(inert(status.version, 40)), Text(inert(status.detail, 200),
                                                            style="dim"))
    return _panel(table if snapshot.services else Text("nothing known", style="dim"),
                  "Services")


def traffic_panel(snapshot: DashboardSnapshot, inner_width: int) -> Panel:
    per_minute = max(60 // max(snapshot.bucket_s, 1), 1)
    spark_width = max(min(inner_width - 42, 60) // per_minute * per_minute, per_minute)
    minutes = spark_width * snapshot.bucket_s / 60
    table = _table(("type", {"width": 10}), ("now", {"justify": "right", "width": 8}),
                   (f"last {minutes:g} min", {"width": spark_width}),
                   ("today", {"justify": "right", "width": 9}))
    types = sorted(set(snapshot.rate_series) | set(snapshot.today) | set(snapshot.rates))
    for name in types:
        table.add_row(Text(inert(name, 20)), Text(rate(snapshot.rates.get(name, 0.0))),
                      Text(sparkline(snapshot.rate_series.get(name, []), spark_width),
                           style="cyan"),
                      Text(compact(snapshot.today.get(name, 0)), style="bold"))
    totals = Text.assemble(
        ("visitors today ", "dim"), (compact(snapshot.unique_visitors_today), "bold"),
        ("  WebSockets ", "dim"), (compact(snapshot.websocket_connections), "bold"),
        ("  all today ", "dim"), (compact(sum(snapshot.today.values())), "bold"))
    totals.no_wrap, totals.overflow = True, "ellipsis"
    body = table if types else Text("no interactions yet today", style="dim")
    return _panel(Group(body, totals), "Interactions", f"UTC day {snapshot.day}")


def _page_label(page: PageCount) -> Text:
    label = Text(inert(page.site, 64), style="dim")
    label.append(" " + inert(page.path, 300))
    if page.title:
        label.append(" — " + inert(page.title, 200), style="italic")
    return label


def pages_panel(title: str, pages: list[PageCount], rows: int, empty: str) -> Panel:
    table = _table(("page", {"ratio": 1}), ("hits", {"justify": "right", "width": 8}))
    for page in pages[:max(rows, 0)]:
        table.add_row(_page_label(page), Text(compact(page.count), style="bold"))
    return _panel(table if pages else Text(empty, style="dim"), title)


def comments_panel(snapshot: DashboardSnapshot, rows: int, now: float) -> Panel:
    waiting = snapshot.awaiting_moderation
    title = Text("Latest comments", style="bold")
    if waiting:
        title.append("  ")
        title.append(f" {compact(waiting)} awaiting moderation ", style="bold black on yellow")
    else:
        title.append("  none awaiting moderation", style="green")
    table = _table(("age", {"width": 4, "justify": "right"}), ("status", {"width": 9}),
                   ("author", {"ratio": 1}), ("page", {"ratio": 2}), ("comment", {"ratio": 4}))
    for comment in snapshot.latest_comments[:max(rows, 0)]:
        table.add_row(Text(age(now - comment.created_at), style="dim"),
                      Text(inert(comment.status, 9), style=STATUS_STYLES.get(comment.status, "")),
                      Text(inert(comment.author, 80) or "anonymous"),
                      Text(inert(f"{comment.site} {comment.path}", 200), style="dim"),
                      Text(inert(comment.text, 300)))
    counts = ", ".join(f"{status} {compact(number)}"
                       for status, number in sorted(snapshot.comments_by_status.items()))
    body = table if snapshot.latest_comments else Text("no comments yet", style="dim")
    return _panel(body, title, counts)


def flush_panel(snapshot: DashboardSnapshot, now: float) -> Panel:
    flush = snapshot.flush
    lines = Table.grid(padding=(0, 1))
    lines.add_column(style="dim")
    lines.add_column(overflow="ellipsis", no_wrap=True)
    if flush.last_at:
        late = now - flush.last_at
        lines.add_row("last flush", Text(f"{age(late)} ago",
                                         style="bold red" if late > 60 else "bold"))
        lines.add_row("rows, time", Text(f"{compact(flush.last_rows)} in "
                                         f"{flush.last_duration_s * 1000:.1f} ms"))
    else:
        lines.add_row("last flush", Text("none yet", style="dim"))
    lines.add_row("pending", Text(compact(flush.pending_counters), style="bold"))
    lines.add_row("batches", Text(f"{compact(flush.batches_total)}, "
                                  f"{compact(flush.failures_total)} failed"))
    if flush.last_error:
        lines.add_row("error", Text(inert(flush.last_error, 200), style="red"))
    return _panel(lines, "Flush")


def queues_panel(snapshot: DashboardSnapshot) -> Panel:
    table = _table(("stream", {"ratio": 1}), ("depth", {"justify": "right", "width": 7}),
                   ("retry", {"justify": "right", "width": 6}),
                   ("dead", {"justify": "right", "width": 6}))
    for stream in snapshot.streams:
        name = stream.name.rsplit(":", 1)[-1]
        depth = stream.lag + stream.pending
        table.add_row(Text(inert(name, 30)), Text(compact(depth), style="bold" if depth else ""),
                      Text(compact(stream.retries), style="yellow" if stream.retries else ""),
                      Text(compact(stream.dead), style="bold red" if stream.dead else ""))
    if not snapshot.streams:
        table.add_row(Text("not read", style="dim"), "", "", "")
    deliveries = snapshot.deliveries
    if deliveries is not None:
        table.add_row(Text("deliveries"), Text(compact(deliveries.queued), style="bold"),
                      Text(compact(deliveries.failed_attempts),
                           style="yellow" if deliveries.failed_attempts else ""),
                      Text(compact(deliveries.dead), style="bold red" if deliveries.dead else ""))
    return _panel(table, "Queues", f"{compact(deliveries.delivered)} delivered"
                  if deliveries is not None else "")


def storage_panel(snapshot: DashboardSnapshot) -> Panel:
    storage = snapshot.storage
    lines = Table.grid(padding=(0, 1))
    lines.add_column(style="dim")
    lines.add_column(overflow="ellipsis", no_wrap=True)
    limit = f" of {size(storage.redis_max_memory)}" if storage.redis_max_memory else ""
    lines.add_row("Redis memory", Text(f"{size(storage.redis_used_memory)}{limit}", style="bold"))
    lines.add_row("Redis peak", Text(size(storage.redis_peak_memory)))
    lines.add_row("Redis keys", Text(compact(storage.redis_keys)))
    lines.add_row("SQL size", Text(size(storage.database_bytes), style="bold"))
    return _panel(lines, "Storage")


# -- the screen -------------------------------------------------------------------------------

def header(snapshot: DashboardSnapshot) -> Text:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot.collected_at))
    text = Text.assemble(("Ovation dashboard", "bold reverse"), " ",
                         (inert(snapshot.instance, 200), "bold"), "  ", (stamp, "dim"))
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def footer(snapshot: DashboardSnapshot, live: bool) -> Text:
    if snapshot.errors:
        text = Text("unavailable: " + inert("; ".join(snapshot.errors), 1000), style="bold red")
    elif live:
        text = Text("q or Ctrl-C quits", style="dim")
    else:
        text = Text("one snapshot (`platformctl dashboard` without --once keeps it live)",
                    style="dim")
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def render(snapshot: DashboardSnapshot, width: int, height: int,
           live: bool = True) -> RenderableType:
    """The whole screen for a terminal of `width` x `height` cells (`live`: the footer says how
    to quit)."""
    width, height = max(width, 20), max(height, 3)
    screen = Layout(name="screen")
    if height < 8:
        screen.split_column(Layout(header(snapshot), size=1),
                            Layout(Text("Enlarge the terminal to see the dashboard.",
                                        style="dim", no_wrap=True, overflow="ellipsis"),
                                   size=1),
                            Layout(footer(snapshot, live)))
        return screen
    body = Layout(name="body")
    screen.split_column(Layout(header(snapshot), size=1), body,
                        Layout(footer(snapshot, live), size=1))
    sections = (_wide_sections if width >= WIDE_MIN_COLUMNS else _narrow_sections)(
        snapshot, width, height - 2)
    body.split_column(*sections)
    return screen


def _rows_for(items: int) -> int:
    return items + 3  # two borders and the table header


def _wide_sections(snapshot: DashboardSnapshot, width: int, height: int) -> list[Layout]:
    now = snapshot.collected_at
    top = _wide_top_height(snapshot)
    bottom = WIDE_BOTTOM_ROWS
    sections: list[Layout] = []
    remaining = height
    if remaining >= top:
        row = Layout(size=top)
        row.split_row(Layout(services_panel(snapshot), ratio=1),
                      Layout(traffic_panel(snapshot, width // 2 - 4), ratio=1))
        sections.append(row)
        remaining -= top
    if remaining >= bottom + 4:
        row = Layout(size=bottom)
        row.split_row(Layout(flush_panel(snapshot, now)), Layout(queues_panel(snapshot)),
                      Layout(storage_panel(snapshot)))
        middle, spare = _middle_sections(snapshot, width, remaining - bottom)
        sections.extend([*middle, row])
    else:
        middle, spare = _middle_sections(snapshot, width, remaining)
        sections.extend(middle)
    if spare > 0:  # blank at the bottom, where a taller terminal simply has more room
        sections.append(Layout(Text(" "), size=spare))
    if not sections:
        sections.append(Layout(Text("Enlarge the terminal to see the dashboard.", style="dim")))
    return sections


def _pages_rows(snapshot: DashboardSnapshot) -> int:
    return min(max(len(snapshot.top_pages_now), len(snapshot.top_pages_today), 1), 10)


def _comment_rows(snapshot: DashboardSnapshot) -> int:
    return min(max(len(snapshot.latest_comments), 1), 10)


def _middle_sections(snapshot: DashboardSnapshot, width: int, height: int
                     ) -> tuple[list[Layout], int]:
    """Top pages side by side, then the latest comments, each as tall as its content when
    there is room, squeezed when there is not. Returns the sections and the lines left over."""
    if height < 4:
        return [], max(height, 0)
    pages_want = _rows_for(_pages_rows(snapshot))
    comments_want = _rows_for(_comment_rows(snapshot))
    if height >= pages_want + comments_want:
        pages_height, comments_height = pages_want, comments_want
    elif height >= 8:
        pages_height = max(min(pages_want, height // 2), 4)
        comments_height = height - pages_height
    else:
        pages_height, comments_height = height, 0
    pages = Layout(size=pages_height)
    pages.split_row(
        Layout(pages_panel("Top pages, last 5 minutes", snapshot.top_pages_now,
                           pages_height - 3, "no interactions in the last 5 minutes")),
        Layout(pages_panel("Top pages today", snapshot.top_pages_today, pages_height - 3,
                           "no interactions today")))
    sections = [pages]
    if comments_height >= 4:
        sections.append(Layout(comments_panel(snapshot, comments_height - 3,
                                              snapshot.collected_at), size=comments_height))
    return sections, height - pages_height - (comments_height if comments_height >= 4 else 0)


def _wide_top_height(snapshot: DashboardSnapshot) -> int:
    types = len(set(snapshot.rate_series) | set(snapshot.today)) or 1
    return max(_rows_for(len(snapshot.services) or 1), _rows_for(types) + 1)


def natural_height(snapshot: DashboardSnapshot, width: int) -> int:
    """The height at which every panel shows in full (for printing into a file or a pipe)."""
    if max(width, 20) >= WIDE_MIN_COLUMNS:
        return (2 + _wide_top_height(snapshot) + _rows_for(_pages_rows(snapshot))
                + _rows_for(_comment_rows(snapshot)) + WIDE_BOTTOM_ROWS)
    return 2 + sum(needed for needed, _build in _narrow_wanted(snapshot, width))


def _side_by_side(*panels: RenderableType) -> Layout:
    row = Layout()
    row.split_row(*(Layout(panel) for panel in panels))
    return row


def _narrow_wanted(snapshot: DashboardSnapshot, width: int) -> list[tuple[int, Callable]]:
    """The one-column panels, most important first: (height, build(rows shown))."""
    now = snapshot.collected_at
    types = len(set(snapshot.rate_series) | set(snapshot.today)) or 1
    return [
        (_rows_for(types) + 1, lambda rows: traffic_panel(snapshot, width - 4)),
        (_rows_for(len(snapshot.services) or 1), lambda rows: services_panel(snapshot)),
        (_rows_for(min(_comment_rows(snapshot), 5)),
         lambda rows: comments_panel(snapshot, rows, now)),
        (_rows_for(min(max(len(snapshot.top_pages_now), 1), 5)),
         lambda rows: pages_panel("Top pages, last 5 minutes", snapshot.top_pages_now, rows,
                                  "no interactions in the last 5 minutes")),
        (WIDE_BOTTOM_ROWS,
         lambda rows: _side_by_side(flush_panel(snapshot, now), storage_panel(snapshot))),
        (_rows_for(len(snapshot.streams) or 1), lambda rows: queues_panel(snapshot)),
        (_rows_for(min(max(len(snapshot.top_pages_today), 1), 5)),
         lambda rows: pages_panel("Top pages today", snapshot.top_pages_today, rows,
                                  "no interactions today")),
    ]


def _narrow_sections(snapshot: DashboardSnapshot, width: int, height: int) -> list[Layout]:
    """One column, most important first; what does not fit is left out, and that is said."""
    wanted = _narrow_wanted(snapshot, width)
    sections, remaining, left_out = [], height, 0
    for needed, build in wanted:
        if needed <= remaining:
            sections.append(Layout(build(needed - 3), size=needed))
            remaining -= needed
        else:
            left_out += 1
    if left_out and remaining >= 1:
        sections.append(Layout(Text(f"{left_out} more panels: widen or heighten the terminal",
                                    style="dim"), size=1))
        remaining -= 1
    if remaining > 0:
        sections.append(Layout(Text(" "), size=remaining))
    return sections
