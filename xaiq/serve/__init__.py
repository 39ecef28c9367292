"""``xaiq serve``: a read-only web app over the store and its artifacts (see :mod:`.app`)."""
