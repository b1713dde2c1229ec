"""The package version, in one place (imported by the facade and by the JSON writers)."""

__version__ = "0.1.0"
