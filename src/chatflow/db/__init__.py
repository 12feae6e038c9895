"""Persistence: engine set-up, ORM models, migrations."""
