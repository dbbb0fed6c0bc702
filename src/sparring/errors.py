"""Exceptions a user can act on; each message says where and what was expected."""


class SparringError(Exception):
    """Base class for errors Sparring reports to the user without a traceback."""


class ConfigError(SparringError):
    """A configuration value is missing or wrong; the message names the file and key."""


class DataFormatError(SparringError):
    """An input file does not have the expected format; the message names the file, line and field."""


class ModelError(SparringError):
    """A model backend failed to produce a response (after its own retries)."""
