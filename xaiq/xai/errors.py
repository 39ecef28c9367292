"""Errors raised by the compute library.

    XaiError                 root: every error this package raises on purpose
    ├── UnknownNameError     a model/dataset/method/... name that is not registered
    ├── InvalidParameterError a parameter outside its domain (names the key and the value)
    ├── ModelLoadError       weights missing, offline, wrong architecture, unreadable file
    ├── DatasetError         a dataset that cannot be opened (missing root, empty folder)
    └── SampleError          one sample that cannot be processed (corrupt image, NaN output)

Every message is one line that names the offending file, key or value.
"""

from __future__ import annotations


class XaiError(Exception):
    """Root of the errors raised by ``xaiq.xai``."""


class UnknownNameError(XaiError, KeyError):
    """A name that is not in its registry; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidParameterError(XaiError, ValueError):
    """A parameter value outside its domain."""


class ModelLoadError(XaiError):
    """A model that cannot be loaded (missing weights, offline, wrong architecture)."""


class DatasetError(XaiError):
    """A dataset that cannot be opened."""


class SampleError(XaiError):
    """One sample that cannot be processed; the rest of a batch goes on."""
