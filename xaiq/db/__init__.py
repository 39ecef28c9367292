"""The SQL store: SQLAlchemy 2.x models, sessions, URLs, Alembic migrations, the
job/shard/lease API, artifacts and the export of rows.

Imports no torch, no numpy/scipy, no ``xaiq.xai``, no ``xaiq.analysis`` and no Celery
(docs/architecture.md); the statistics over these rows live in :mod:`xaiq.analysis`.
"""
