"""Alembic revision scripts for trackmail's schema; `tracker.schema` runs them, no alembic.ini needed.

`python -m tracker.migrations "what changed"` writes the next revision from the models (see README).
"""
