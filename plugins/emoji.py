"""Emoji reactions: each reader picks at most one emoji per page, and may change it (a choice
type). Sites choose which of the set they show: `platformctl site set S --choices
emoji=heart,tada`.
"""

from __future__ import annotations

from appliance.plugin_api import Choice, Kind, PluginContext, ReactionType

EMOJI = (
    Choice("thumbs_up", "Thumbs up", "👍"),
    Choice("heart", "Love", "❤️"),
    Choice("laugh", "Funny", "😂"),
    Choice("wow", "Surprising", "😮"),
    Choice("sad", "Sad", "😢"),
    Choice("tada", "Celebrate", "🎉"),
    Choice("thinking", "Thought-provoking", "🤔"),
    Choice("fire", "Hot", "🔥"),
    Choice("rocket", "Inspiring", "🚀"),
    Choice("eyes", "Watching", "👀"),
    Choice("angry", "Angry", "😠"),
    Choice("pray", "Thank you", "🙏"),
)


def emoji(context: PluginContext) -> ReactionType:
    """One emoji per reader per page, from a set each site picks (six by default)."""
    return ReactionType(
        name="emoji", label="Emoji reactions", icon="😀", kind=Kind.CHOICE, choices=EMOJI,
        default_choices=("thumbs_up", "heart", "laugh", "wow", "sad", "tada"),
        enabled_by_default=False)
