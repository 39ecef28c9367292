"""Baselines measured in the same run as the library: the model's own limits (plain batched
forward, forward+backward) and the source scripts' way of doing the same work."""
