"""Reaction-type plugins shipped with Ovation, registered through `ovation.reactions`."""
