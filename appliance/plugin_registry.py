"""Loads reaction-type plugins and answers "which types exist", and how each plugin fared.

Plugins come from the entry-point group `ovation.reactions`. Two rules keep a deployment
predictable: two plugins declaring one name stop start-up (which one would win is a guess), and
a plugin that fails to load is isolated (logged, listed as failed by `platformctl plugins list`,
its type missing from the sites that show it) so one broken package never takes the others down.
The `plugins` setting allowlists what loads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from appliance.errors import PluginError, UnknownReaction
from appliance.plugin_api import ENTRY_POINT_GROUP, PluginFactory, ReactionType
from appliance.settings import Settings

log = logging.getLogger("ovation.plugins")
_DISPLAY_FIRST = ("view", "like", "applause")

LOADED, DISABLED, FAILED = "loaded", "disabled", "failed"


@dataclass(frozen=True)
class _Context:
    settings: Settings


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin and what became of it."""

    entry_point: str  # the entry-point name, which the `plugins` setting lists
    target: str  # module:function
    package: str  # the distribution that registered it
    version: str
    status: str  # loaded | disabled (not in the allowlist) | failed
    error: str = ""
    reaction: ReactionType | None = None


@dataclass(frozen=True)
class PluginSource:
    """An entry point before loading: where it comes from and how to load its factory."""

    entry_point: str
    target: str
    package: str
    version: str
    load: Callable[[], PluginFactory]

    @classmethod
    def of(cls, point: EntryPoint) -> PluginSource:
        dist = getattr(point, "dist", None)
        return cls(point.name, point.value, dist.name if dist else "?",
                   dist.version if dist else "?", point.load)

    @classmethod
    def of_factory(cls, name: str, factory: PluginFactory) -> PluginSource:
        return cls(name, f"{factory.__module__}:{factory.__qualname__}", "(in process)", "-",
                   lambda: factory)


def allowlist(settings: Settings) -> set[str] | None:
    """The entry-point names the `plugins` setting allows, or None for all."""
    text = settings.plugins.strip()
    return None if text == "*" else {name.strip() for name in text.split(",") if name.strip()}


class ReactionRegistry:
    """The reaction types this process knows, in display order, and the plugins behind them."""

    def __init__(self, types: Iterable[ReactionType], plugins: Iterable[PluginInfo] = ()) -> None:
        self._types: dict[str, ReactionType] = {}
        for reaction in types:
            if reaction.name in self._types:
                raise PluginError(f"Two plugins declare the reaction type {reaction.name!r}; "
                                  "uninstall one of them or leave one out of the `plugins` "
                                  "setting.")
            self._types[reaction.name] = reaction
        self.plugins: list[PluginInfo] = list(plugins)

    @classmethod
    def from_sources(cls, sources: Iterable[PluginSource], settings: Settings
                     ) -> ReactionRegistry:
        allowed = allowlist(settings)
        sources = list(sources)
        if allowed is not None:
            missing = allowed - {source.entry_point for source in sources}
            if missing:
                raise PluginError(f"The plugins setting names {', '.join(sorted(missing))}, "
                                  "which no installed package registers (see `platformctl "
                                  "plugins list`).")
        context = _Context(settings)
        infos: list[PluginInfo] = []
        types: list[ReactionType] = []
        for source in sources:
            base = (source.entry_point, source.target, source.package, source.version)
            if allowed is not None and source.entry_point not in allowed:
                infos.append(PluginInfo(*base, DISABLED))
                continue
            try:
                reaction = source.load()(context)
                if not isinstance(reaction, ReactionType):
                    raise TypeError(f"returned {type(reaction).__name__}, not a ReactionType")
            except Exception as exc:  # isolated: the other plugins still load
                log.error("reaction plugin %s (%s) failed to load: %s", source.entry_point,
                          source.target, exc, exc_info=exc)
                infos.append(PluginInfo(*base, FAILED, error=f"{type(exc).__name__}: {exc}"))
                continue
            infos.append(PluginInfo(*base, LOADED, reaction=reaction))
            types.append(reaction)
        order = {name: index for index, name in enumerate(_DISPLAY_FIRST)}
        types.sort(key=lambda t: (order.get(t.name, len(order)), t.name))
        return cls(types, infos)

    @classmethod
    def from_factories(cls, factories: dict[str, PluginFactory],
                       settings: Settings) -> ReactionRegistry:
        """A registry of in-process factories (tests, benchmarks)."""
        return cls.from_sources(
            [PluginSource.of_factory(name, factory) for name, factory in factories.items()],
            settings)

    @classmethod
    def discover(cls, settings: Settings) -> ReactionRegistry:
        """Load every allowed plugin registered in the `ovation.reactions` entry-point group."""
        sources: dict[str, PluginSource] = {}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            source = PluginSource.of(point)
            other = sources.get(point.name)
            if other is not None and other.target != source.target:
                raise PluginError(
                    f"Two packages register the reaction plugin {point.name!r} "
                    f"({other.package}: {other.target} and {source.package}: {source.target}); "
                    "uninstall one of them.")
            sources[point.name] = source
        if not sources:
            raise PluginError("No reaction plugins are installed: is Ovation installed with "
                              "pip (`pip install -e .`)? The built-ins register through it.")
        registry = cls.from_sources(sources.values(), settings)
        if not registry._types:
            raise PluginError("No reaction plugin loaded: see `platformctl plugins list`.")
        return registry

    def get(self, name: str) -> ReactionType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(self._types)
            raise UnknownReaction(f"Unknown reaction type {name!r}; the loaded types are: {known}.",
                                  details={"field": "reaction"}) from None

    def names(self) -> list[str]:
        return list(self._types)

    def failed(self) -> list[PluginInfo]:
        return [info for info in self.plugins if info.status == FAILED]

    def __iter__(self) -> Iterator[ReactionType]:
        return iter(self._types.values())

    def __contains__(self, name: object) -> bool:
        return name in self._types
