"""Typer command-line interface. Never imports torch at module level."""
