"""The SQL store: SQLAlchemy 2.x models, sessions, Alembic migrations, read queries.

Imports no torch, no ``xaiq.xai`` and no Celery.
"""
