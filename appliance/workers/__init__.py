"""Stream-consuming processes: the listener and the notifier."""
