"""Everything a reaction-type plugin imports. Nothing else of the appliance is for plugins.

A plugin is a callable registered in the entry-point group `ovation.reactions` that takes a
`PluginContext` and returns a `ReactionType`. The built-in view, like and applause types are
plugins registered through that same group (see `plugins/`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

ENTRY_POINT_GROUP = "ovation.reactions"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Kind(enum.StrEnum):
    """The semantics the appliance implements once for every reaction type."""

    COUNTER = "counter"  #: adds up; optional per-visitor cap and per-visitor window
    TOGGLE = "toggle"  #: one per visitor, withdrawable (like, bookmark)


@dataclass(frozen=True)
class ReactionType:
    """A reaction type: what readers can do to a page, and how it counts."""

    name: str  #: stable identifier used in the API and storage, e.g. "applause"
    label: str  #: human name shown in the widget
    icon: str  #: an emoji or an inline SVG
    kind: Kind  #: counting semantics
    per_visitor_cap: int | None = None  #: COUNTER: most one visitor may add to one page
    window_s: int = 0  #: COUNTER: a visitor's hits within this window count once (0: no window)
    max_amount: int = 1  #: COUNTER: most one request may add
    options: dict[str, Any] = field(default_factory=dict)  #: free-form, sent to the widget

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"reaction name {self.name!r} must match {_NAME.pattern}")
        if self.max_amount < 1:
            raise ValueError(f"{self.name}: max_amount must be at least 1")
        if self.per_visitor_cap is not None and self.per_visitor_cap < 1:
            raise ValueError(f"{self.name}: per_visitor_cap must be at least 1")


class PluginSettings(Protocol):
    """The read-only settings a plugin may consult."""

    view_window_s: int
    applause_cap: int


class PluginContext(Protocol):
    """What the appliance hands a plugin factory."""

    @property
    def settings(self) -> PluginSettings:
        """The appliance's effective settings."""
        ...


PluginFactory = Callable[[PluginContext], ReactionType]
