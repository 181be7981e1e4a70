"""Persistence: typed tables, engine and sessions, and the Alembic bridge."""
