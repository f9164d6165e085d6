"""The rules: dedup windows, caps, validation, site policy. `web` and `cli` call these."""
