"""The package version (one place; ``ferbench --version``, the service and sidecars read it)."""

__version__ = "0.2.0"
