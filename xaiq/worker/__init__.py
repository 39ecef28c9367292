"""Workers: the shard function (the only place that runs ``xai`` compute and writes results),
its Celery task, and the embedded executor that runs the same function in-process."""
