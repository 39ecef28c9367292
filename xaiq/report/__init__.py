"""The read side's pictures: the self-contained HTML report and per-sample figures.

Imports ``xaiq.db`` and numpy/matplotlib; torch only lazily, when an original image has to
be re-read from the dataset through the model's preprocessing (see :mod:`.sources`).
"""

from xaiq.report.html import build_report
from xaiq.report.show import show_sample

__all__ = ["build_report", "show_sample"]
