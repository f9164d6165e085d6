"""Everything a reaction-type plugin imports. Nothing else of the appliance is for plugins.

A plugin is a callable registered in the entry-point group `ovation.reactions` that takes a
`PluginContext` and returns a `ReactionType`. The built-in view, like and applause types are
plugins registered through that same group (see `plugins/builtin.py`), and so are the bundled
emoji reactions and star rating (`plugins/emoji.py`, `plugins/stars.py`).

A type chooses one of four `Kind`s; the appliance implements each kind once (rules in one
Redis script, the write-behind flush, live updates, batch totals, the widget), so a plugin
declares *what* it is and never touches storage. The page totals a type contributes:

| kind | totals keys | a visitor's state |
| --- | --- | --- |
| counter | `NAME` | what they gave (capped types), else nothing |
| toggle | `NAME` | `true` / `false` |
| choice | `NAME.KEY` for each option the site shows | the option key, or `null` |
| score | `NAME.sum` and `NAME.count` (average = sum / count) | their score, or `null` |

Optional hooks: `validate` may refuse an interaction (raise `Rejected` with a message the
reader sees); `on_milestone` is called once a page's total crosses one of `milestones`. Hooks
run inside the web worker: keep them quick (a hook that needs the network should hand the work
to a thread or a queue). A hook that raises anything else is isolated: the error is logged and
counted for that type, and every other type keeps working.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

ENTRY_POINT_GROUP = "ovation.reactions"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_]{0,23}$")
MAX_CHOICES = 24
SCORE_LIMIT = 1000  # scores stay within -SCORE_LIMIT..SCORE_LIMIT


class Kind(enum.StrEnum):
    """The semantics the appliance implements once for every reaction type."""

    COUNTER = "counter"  #: adds up; optional per-visitor cap and per-visitor window
    TOGGLE = "toggle"  #: one per visitor, withdrawable (like, bookmark)
    CHOICE = "choice"  #: at most one option of a set per visitor, changeable (emoji, a poll)
    SCORE = "score"  #: a number in a range per visitor, changeable (star rating)


@dataclass(frozen=True)
class Choice:
    """One option of a CHOICE type."""

    key: str  #: stable identifier, e.g. "heart"; part of the totals key `NAME.KEY`
    label: str  #: human name, e.g. "Love"
    icon: str  #: an emoji or an inline SVG

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"choice key {self.key!r} must match {_KEY.pattern}")


@dataclass(frozen=True)
class Interaction:
    """What a `validate` hook sees: one reader's interaction, before it is recorded."""

    site: str
    path: str
    reaction: str
    action: str  #: "add" or "remove"
    amount: int  #: COUNTER: how much; otherwise 1
    choice: str | None  #: CHOICE: the option key
    score: int | None  #: SCORE: the score given


@dataclass(frozen=True)
class Milestone:
    """What an `on_milestone` hook sees: a page's total just reached `milestone`."""

    site: str
    path: str
    reaction: str
    milestone: int
    total: int


class Rejected(Exception):
    """Raised by a `validate` hook to refuse an interaction; the message reaches the reader."""


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
    choices: tuple[Choice, ...] = ()  #: CHOICE: every option; a site may show a subset
    default_choices: tuple[str, ...] | None = None  #: CHOICE: shown unless a site picks; None: all
    score_min: int = 1  #: SCORE: lowest score
    score_max: int = 5  #: SCORE: highest score
    enabled_by_default: bool = True  #: shown on sites that have not chosen their types
    milestones: tuple[int, ...] = ()  #: totals at which `on_milestone` is called
    validate: Callable[[Interaction], None] | None = None  #: raise `Rejected` to refuse
    on_milestone: Callable[[Milestone], None] | None = None
    options: dict[str, Any] = field(default_factory=dict)  #: free-form, sent to the widget

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"reaction name {self.name!r} must match {_NAME.pattern}")
        if not isinstance(self.kind, Kind):
            raise ValueError(f"{self.name}: kind must be one of {', '.join(Kind)}")
        if self.max_amount < 1:
            raise ValueError(f"{self.name}: max_amount must be at least 1")
        if self.per_visitor_cap is not None and self.per_visitor_cap < 1:
            raise ValueError(f"{self.name}: per_visitor_cap must be at least 1")
        if self.kind is Kind.CHOICE:
            self._check_choices()
        elif self.choices:
            raise ValueError(f"{self.name}: only a choice type has choices")
        if self.kind is Kind.SCORE and not (
                -SCORE_LIMIT <= self.score_min < self.score_max <= SCORE_LIMIT):
            raise ValueError(f"{self.name}: scores need score_min < score_max, both within "
                             f"±{SCORE_LIMIT}")
        if any(m < 1 for m in self.milestones):
            raise ValueError(f"{self.name}: milestones must be positive")

    def _check_choices(self) -> None:
        keys = [choice.key for choice in self.choices]
        if not keys or len(keys) > MAX_CHOICES:
            raise ValueError(f"{self.name}: a choice type needs 1 to {MAX_CHOICES} choices")
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.name}: choice keys must be unique")
        unknown = set(self.default_choices or ()) - set(keys)
        if unknown:
            raise ValueError(f"{self.name}: default_choices names unknown keys "
                             f"{', '.join(sorted(unknown))}")

    def choice_keys(self) -> tuple[str, ...]:
        return tuple(choice.key for choice in self.choices)


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
