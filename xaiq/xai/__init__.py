"""Pure compute library: models, datasets, explainers, superpixels, metrics, RISE, attack.

Imports nothing of the job system (no Celery, SQLAlchemy or Redis); usable on its own.
"""
