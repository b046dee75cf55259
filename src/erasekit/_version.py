"""The version, in one place (read by hatch and by every module that records it)."""

__version__ = "0.1.0"
