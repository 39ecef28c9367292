"""``python -m xaiq.db.migrations revision -m MESSAGE URL`` (authoring helper)."""

import sys

from xaiq.db.migrations import main

main(sys.argv[1:])
