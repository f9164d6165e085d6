"""Ovation's domain: settings, errors, events, plugin API, storage, services, jobs, workers."""

__version__ = "0.1.0"
