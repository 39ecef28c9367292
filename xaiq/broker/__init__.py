"""The broker, shared by the scheduler (which publishes) and the workers (which consume):
the Celery application's settings, the task names and queues (:mod:`.app`), and the
scheduler's wake-ups (:mod:`.wake`). It imports neither the scheduler nor the worker, so
neither has to import the other; no torch, no SQLAlchemy."""
