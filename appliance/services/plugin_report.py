"""What `platformctl plugins list` shows: every registered plugin, how it fared, where it shows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from appliance.plugin_registry import ReactionRegistry
from appliance.services.site_reactions import layout
from appliance.storage.site_store import SiteRecord


def plugin_rows(registry: ReactionRegistry, sites: Iterable[SiteRecord] | None,
                errors: dict[str, int] | None, last_errors: dict[str, str] | None
                ) -> list[dict[str, Any]]:
    """One row per registered plugin. `sites` None: the database could not be read; `errors`
    None: Redis could not be read (hooks that raised are counted there)."""
    shown_on: dict[str, list[str]] = {}
    wanted_by: dict[str, list[str]] = {}  # sites that name a type which did not load
    for site in sites or ():
        for reaction in layout(registry, site):
            shown_on.setdefault(reaction.name, []).append(site.name)
        for name in site.reactions or ():
            if name not in registry:
                wanted_by.setdefault(name, []).append(site.name)
    rows = []
    for info in sorted(registry.plugins, key=lambda info: info.entry_point):
        reaction = info.reaction
        name = reaction.name if reaction else info.entry_point
        rows.append({
            "plugin": info.entry_point, "type": name,
            "kind": reaction.kind.value if reaction else None,
            "label": reaction.label if reaction else None,
            "package": info.package, "version": info.version, "target": info.target,
            "status": info.status, "error": info.error or (last_errors or {}).get(name, ""),
            "hook_errors": None if errors is None else errors.get(name, 0),
            "sites": None if sites is None else shown_on.get(name, []),
            "sites_missing_it": None if sites is None else wanted_by.get(name, []),
            "on_by_default": bool(reaction and reaction.enabled_by_default),
        })
    return rows
