"""Reaction-type plugins: built-ins come through the entry-point group; duplicates stop start-up."""

from __future__ import annotations

import pytest

from appliance.errors import PluginError, UnknownReaction
from appliance.plugin_api import Kind, ReactionType
from appliance.plugin_registry import ReactionRegistry
from appliance.settings import Settings
from tests.conftest import BUILTIN_FACTORIES


def test_builtins_are_discovered_through_the_entry_point_group(tmp_path):
    registry = ReactionRegistry.discover(Settings(data_dir=tmp_path))
    assert registry.names()[:3] == ["view", "like", "applause"]


def test_builtins_follow_settings(tmp_path):
    registry = ReactionRegistry.from_factories(
        BUILTIN_FACTORIES, Settings(data_dir=tmp_path, applause_cap=12, view_window_s=60))
    assert registry.get("applause").per_visitor_cap == 12
    assert registry.get("view").window_s == 60
    assert registry.get("like").kind is Kind.TOGGLE


def test_duplicate_reaction_names_stop_start_up(tmp_path):
    def another_like(_context):
        return ReactionType(name="like", label="Like", icon="👍", kind=Kind.TOGGLE)

    with pytest.raises(PluginError, match="Two plugins declare the reaction type 'like'"):
        ReactionRegistry.from_factories({**BUILTIN_FACTORIES, "thumbs": another_like},
                                        Settings(data_dir=tmp_path))


def test_unknown_reaction_lists_the_known_ones(tmp_path):
    registry = ReactionRegistry.from_factories(BUILTIN_FACTORIES, Settings(data_dir=tmp_path))
    with pytest.raises(UnknownReaction, match="view, like, applause"):
        registry.get("clap")


@pytest.mark.parametrize("name", ["Like", "1like", "a-b", "x" * 33, ""])
def test_reaction_names_are_validated(name):
    with pytest.raises(ValueError):
        ReactionType(name=name, label="x", icon="x", kind=Kind.COUNTER)
