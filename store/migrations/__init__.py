"""Alembic migrations of the moldlab database (run by `moldlab db upgrade`)."""
