"""Which reaction types a site shows, with its own choices and caps, and the totals they make.

The registry says which types exist; a site picks some of them (`site set --reactions`) and,
for choice types, which options (`--choices emoji=heart,tada`). Everything that reads or writes
totals asks this module for the site's layout, so storage, flush, live pushes and the widget
stay free of type-specific code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.errors import InvalidInput, UnknownReaction
from appliance.plugin_api import Choice, Kind, ReactionType
from appliance.plugin_registry import ReactionRegistry
from appliance.storage.site_store import SiteRecord

PART_SEPARATOR = "."  # a choice option's or a score's part of a totals key: `emoji.heart`


@dataclass(frozen=True)
class SiteReaction:
    """One reaction type as one site shows it."""

    type: ReactionType
    choices: tuple[Choice, ...]  # CHOICE: the options this site shows, in order
    cap: int | None  # COUNTER: the per-visitor cap on this site

    @property
    def name(self) -> str:
        return self.type.name

    @property
    def kind(self) -> Kind:
        return self.type.kind

    def fields(self) -> list[str]:
        """The totals keys this type contributes (see the table in `plugin_api`)."""
        name = self.type.name
        if self.type.kind is Kind.CHOICE:
            return [f"{name}{PART_SEPARATOR}{choice.key}" for choice in self.choices]
        if self.type.kind is Kind.SCORE:
            return [f"{name}{PART_SEPARATOR}sum", f"{name}{PART_SEPARATOR}count"]
        return [name]

    def total(self, totals: dict[str, int]) -> int:
        """The one number milestones count: the total, the choices made, or the scores given."""
        if self.type.kind is Kind.CHOICE:
            return sum(totals.get(field, 0) for field in self.fields())
        if self.type.kind is Kind.SCORE:
            return totals.get(f"{self.type.name}{PART_SEPARATOR}count", 0)
        return totals.get(self.type.name, 0)


@dataclass(frozen=True)
class SiteReactions:
    """A site's reaction types in display order, and the totals keys they make."""

    reactions: tuple[SiteReaction, ...]
    fields: tuple[str, ...]
    fields_csv: str  # as the Redis scripts take them
    types_csv: str

    def get(self, name: str) -> SiteReaction:
        for reaction in self.reactions:
            if reaction.name == name:
                return reaction
        shown = ", ".join(reaction.name for reaction in self.reactions) or "none"
        raise UnknownReaction(f"Unknown reaction type {name!r}; this site shows: {shown}.",
                              details={"field": "reaction"})

    def __iter__(self):
        return iter(self.reactions)


def layout(registry: ReactionRegistry, site: SiteRecord) -> SiteReactions:
    """The site's layout. Types the site names that are not loaded (uninstalled, disabled or
    failing plugins) are left out, so a broken plugin never breaks a site."""
    if site.reactions is None:
        chosen = [reaction for reaction in registry if reaction.enabled_by_default]
    else:
        chosen = [registry.get(name) for name in site.reactions if name in registry]
    reactions = tuple(_site_reaction(reaction, site) for reaction in chosen)
    fields = tuple(field for reaction in reactions for field in reaction.fields())
    return SiteReactions(reactions, fields, ",".join(fields),
                         ",".join(reaction.name for reaction in reactions))


def _site_reaction(reaction: ReactionType, site: SiteRecord) -> SiteReaction:
    options = site.reaction_options.get(reaction.name, {})
    choices: tuple[Choice, ...] = ()
    if reaction.kind is Kind.CHOICE:
        by_key = {choice.key: choice for choice in reaction.choices}
        keys = options.get("choices") or reaction.default_choices or reaction.choice_keys()
        choices = tuple(by_key[key] for key in keys if key in by_key)
    cap = options.get("per_visitor_cap") or reaction.per_visitor_cap
    return SiteReaction(reaction, choices, int(cap) if cap else None)


def parse_reaction_list(registry: ReactionRegistry, text: str) -> tuple[str, ...] | None:
    """`like,applause,emoji` -> the names, checked against the loaded types; `default` -> None
    (the site shows the types that are on by default)."""
    if text.strip().lower() == "default":
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InvalidInput("Name at least one reaction type, or `default`.",
                           details={"field": "reactions"})
    for name in names:
        registry.get(name)  # raises UnknownReaction naming the known ones
    return tuple(dict.fromkeys(names))


def parse_choices(registry: ReactionRegistry, assignments: Iterable[str]
                  ) -> dict[str, list[str] | None]:
    """`emoji=heart,tada` -> {"emoji": ["heart", "tada"]}; `emoji=default` -> {"emoji": None}."""
    parsed: dict[str, list[str] | None] = {}
    for assignment in assignments:
        name, sep, keys_text = assignment.partition("=")
        if not sep:
            raise InvalidInput(f"--choices {assignment!r}: write TYPE=KEY,KEY,... "
                               "(e.g. emoji=heart,tada).", details={"field": "choices"})
        reaction = registry.get(name.strip())
        if reaction.kind is not Kind.CHOICE:
            raise InvalidInput(f"{reaction.name} is a {reaction.kind} type; only choice types "
                               "have choices.", details={"field": "choices"})
        if keys_text.strip().lower() == "default":
            parsed[reaction.name] = None
            continue
        keys = list(dict.fromkeys(key.strip() for key in keys_text.split(",") if key.strip()))
        unknown = [key for key in keys if key not in reaction.choice_keys()]
        if unknown or not keys:
            raise InvalidInput(f"{reaction.name} offers {', '.join(reaction.choice_keys())}; "
                               f"not {', '.join(unknown) or 'nothing'}.",
                               details={"field": "choices"})
        parsed[reaction.name] = keys
    return parsed


def change_site_reactions(registry: ReactionRegistry, site: SiteRecord, reactions: str | None,
                          choices: Iterable[str]) -> SiteRecord:
    """The site with its reaction types (`--reactions`) and choice sets (`--choices`) changed;
    everything else, including other types' options, kept."""
    shown = site.reactions if reactions is None else parse_reaction_list(registry, reactions)
    options = {name: dict(values) for name, values in site.reaction_options.items()}
    for name, keys in parse_choices(registry, choices).items():
        entry = options.setdefault(name, {})
        if keys is None:
            entry.pop("choices", None)
        else:
            entry["choices"] = keys
        if not entry:
            del options[name]
    return dataclasses.replace(site, reactions=shown, reaction_options=options)
