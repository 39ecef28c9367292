"""Test-only fault hooks, loaded by the subprocesses that tests/reliability/services.py starts
(this directory is on their PYTHONPATH; nothing else imports it). Inert unless a test sets:

- ``XAIQ_TEST_SAMPLE_DELAY=<seconds>``: each sample load sleeps that long;
- ``XAIQ_TEST_CRASH_KEY=<sample key>``: loading that sample kills the process (``os._exit``);
- ``XAIQ_TEST_SIGNAL_AFTER_COMMIT=<signal number>``: the process sends itself that signal the
  moment a job row (and its shards) is committed.
"""

import os

_DELAY = float(os.environ.get("XAIQ_TEST_SAMPLE_DELAY") or 0)
_CRASH = os.environ.get("XAIQ_TEST_CRASH_KEY") or None

if _DELAY or _CRASH:
    import time

    from xaiq.xai import datasets as _datasets

    _original_load = _datasets.Dataset.load

    def _load_with_faults(self, index):  # type: ignore[no-untyped-def]
        if _CRASH is not None and self.key(index) == _CRASH:
            os._exit(70)  # no cleanup, no exception: like a native crash
        if _DELAY:
            time.sleep(_DELAY)
        return _original_load(self, index)

    _datasets.Dataset.load = _load_with_faults  # type: ignore[method-assign]

_SIGNAL = int(os.environ.get("XAIQ_TEST_SIGNAL_AFTER_COMMIT") or 0)

if _SIGNAL:
    from xaiq.db import jobs as _jobs

    _original_create = _jobs.create_job

    def _create_then_signal(*args, **kwargs):  # type: ignore[no-untyped-def]
        job_id = _original_create(*args, **kwargs)
        os.kill(os.getpid(), _SIGNAL)
        return job_id

    _jobs.create_job = _create_then_signal
