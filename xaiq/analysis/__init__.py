"""Statistics over stored rows: grouping, the exact and digest paths, intervals and tests,
comparisons, faithfulness/sanity and attack statistics, the glossary.

What the CLI, the report and :mod:`xaiq.results` call, so that one number has one
implementation. Imports the store (:mod:`xaiq.db`) only: no torch, no ``xaiq.xai``, no
worker, scheduler, CLI or report code (docs/architecture.md).
"""
