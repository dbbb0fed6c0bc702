"""Sparring: red teaming language models, end to end (Ganguli et al. 2022 and beyond)."""

__version__ = "0.1.0"
