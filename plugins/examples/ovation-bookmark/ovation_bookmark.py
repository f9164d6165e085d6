"""A bookmark reaction type for Ovation: one per reader, withdrawable (a toggle), shown only on
posts, and a log line when a post reaches 10, 100 or 1,000 bookmarks.

Everything it needs comes from `appliance.plugin_api`; it is registered in `setup.cfg` under the
entry-point group `ovation.reactions`. docs/plugins.md builds it step by step.
"""

from __future__ import annotations

import logging

from appliance.plugin_api import Interaction, Kind, Milestone, PluginContext, ReactionType, Rejected

log = logging.getLogger("ovation.plugins.bookmark")

# An inline SVG icon: the widget shows it as an image, never as markup.
ICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="#d97706">'
        '<path d="M6 2h12a1 1 0 0 1 1 1v19l-7-4-7 4V3a1 1 0 0 1 1-1z"/></svg>')


def only_posts(interaction: Interaction) -> None:
    """Bookmarks make sense on posts, not on the about page or the index."""
    if interaction.action == "add" and not interaction.path.startswith("/posts/"):
        raise Rejected("Only posts can be bookmarked.")


def celebrate(milestone: Milestone) -> None:
    """Runs in a worker thread once a post's bookmark count reaches a milestone."""
    log.info("%s%s reached %d bookmarks", milestone.site, milestone.path, milestone.milestone)


def bookmark(context: PluginContext) -> ReactionType:
    return ReactionType(name="bookmark", label="Bookmark", icon=ICON, kind=Kind.TOGGLE,
                        enabled_by_default=False, milestones=(10, 100, 1000),
                        validate=only_posts, on_milestone=celebrate)
