"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class FerbenchError(Exception):
    """A problem with the user's input (file, column, name, option) — not a bug.

    The message must name the offending thing (file and row, model name, option) in one line.
    """


class DataError(FerbenchError):
    """A dataset file is missing, malformed or unreadable."""


class ConfigError(FerbenchError):
    """A config key or value is invalid."""
