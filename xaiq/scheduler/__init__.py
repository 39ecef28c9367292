"""Job specs and their validation, planning into shards, submission, and the scheduler loop.

The scheduler looks names up in the ``xai`` registries to validate specs; it never runs
compute (that is :mod:`xaiq.worker`).
"""
