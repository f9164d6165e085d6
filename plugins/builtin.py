"""The built-in reaction types: view, like and applause.

They are ordinary plugins: entry points in `setup.cfg` under `ovation.reactions`, importing only
`appliance.plugin_api`.
"""

from __future__ import annotations

from appliance.plugin_api import Kind, PluginContext, ReactionType


def view(context: PluginContext) -> ReactionType:
    """One view per visitor per page per window."""
    return ReactionType(name="view", label="Views", icon="👁", kind=Kind.COUNTER,
                        window_s=context.settings.view_window_s, max_amount=1)


def like(context: PluginContext) -> ReactionType:
    """A like, once per visitor, withdrawable."""
    return ReactionType(name="like", label="Like", icon="❤", kind=Kind.TOGGLE)


def applause(context: PluginContext) -> ReactionType:
    """Claps, capped per visitor per page."""
    cap = context.settings.applause_cap
    return ReactionType(name="applause", label="Applause", icon="👏", kind=Kind.COUNTER,
                        per_visitor_cap=cap, max_amount=cap)
