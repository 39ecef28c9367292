"""xaiq: explainable-AI experiments on image classifiers, at dataset scale."""

__version__ = "0.1.0"
