"""A 1-5 star rating: each reader gives a page one score and may change or withdraw it (a
score type); pages show the average and the number of ratings."""

from __future__ import annotations

from appliance.plugin_api import Kind, PluginContext, ReactionType


def stars(context: PluginContext) -> ReactionType:
    """Rate a page from one to five stars."""
    return ReactionType(name="stars", label="Rating", icon="★", kind=Kind.SCORE, score_min=1,
                        score_max=5, enabled_by_default=False)
