"""Loads reaction-type plugins and answers "which types exist"."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points

from appliance.errors import PluginError, UnknownReaction
from appliance.plugin_api import ENTRY_POINT_GROUP, PluginFactory, ReactionType
from appliance.settings import Settings

log = logging.getLogger("ovation.plugins")
_DISPLAY_FIRST = ("view", "like", "applause")


@dataclass(frozen=True)
class _Context:
    settings: Settings


class ReactionRegistry:
    """The reaction types this process knows, in display order."""

    def __init__(self, types: Iterable[ReactionType]) -> None:
        self._types: dict[str, ReactionType] = {}
        for reaction in types:
            if reaction.name in self._types:
                raise PluginError(f"Two plugins declare the reaction type {reaction.name!r}; "
                                  "uninstall or disable one of them.")
            self._types[reaction.name] = reaction

    @classmethod
    def from_factories(cls, factories: dict[str, PluginFactory],
                       settings: Settings) -> ReactionRegistry:
        context = _Context(settings)
        types = []
        for source, factory in factories.items():
            try:
                types.append(factory(context))
            except Exception as exc:  # a broken plugin must say which one it is
                raise PluginError(f"Reaction plugin {source} failed to load: {exc}") from exc
        order = {name: index for index, name in enumerate(_DISPLAY_FIRST)}
        types.sort(key=lambda t: (order.get(t.name, len(order)), t.name))
        return cls(types)

    @classmethod
    def discover(cls, settings: Settings) -> ReactionRegistry:
        """Load every plugin registered in the `ovation.reactions` entry-point group."""
        factories: dict[str, PluginFactory] = {}
        seen: dict[str, str] = {}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            if point.name in seen:
                raise PluginError(
                    f"Two packages register the reaction plugin {point.name!r} "
                    f"({seen[point.name]} and {point.value}); uninstall one of them.")
            seen[point.name] = point.value
            try:
                factories[f"{point.name} ({point.value})"] = point.load()
            except Exception as exc:
                raise PluginError(f"Reaction plugin {point.name} ({point.value}) cannot be "
                                  f"imported: {exc}") from exc
        if not factories:
            raise PluginError("No reaction plugins are installed: is Ovation installed with "
                              "pip (`pip install -e .`)? The built-ins register through it.")
        return cls.from_factories(factories, settings)

    def get(self, name: str) -> ReactionType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(self._types)
            raise UnknownReaction(f"Unknown reaction type {name!r}; this site knows: {known}.",
                                  details={"field": "reaction"}) from None

    def names(self) -> list[str]:
        return list(self._types)

    def __iter__(self):
        return iter(self._types.values())

    def __contains__(self, name: object) -> bool:
        return name in self._types
