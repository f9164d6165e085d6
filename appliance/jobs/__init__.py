"""Periodic jobs run by the flusher process."""
