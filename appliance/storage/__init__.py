"""Storage: Redis keys and atomic scripts, SQL models, migrations. No rules live here."""
