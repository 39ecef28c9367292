"""xaiq's benchmark suite: ``python -m bench [--quick] [--only NAME] [--out results.json]``.

Every figure is a ratio against a baseline measured in the same run (see bench/README.md).
"""
