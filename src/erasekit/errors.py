"""Errors raised on purpose by erasekit.

Each derives from :class:`ErasekitError` and from the builtin it refines, so callers can catch
either. Messages say what was found, what was expected and how to fix it.
"""

from __future__ import annotations


class ErasekitError(Exception):
    """Base class of every error erasekit raises on purpose."""


class ConfigError(ErasekitError, ValueError):
    """A hyper-parameter, concept list or option is invalid."""


class PromptsFileError(ConfigError):
    """A prompts CSV is missing, unreadable, empty or lacks columns."""


class UnknownNameError(ErasekitError, KeyError):
    """No method, attack, metric or world is registered under that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownMethodError(UnknownNameError):
    """No erasure method is registered under that name."""


class UnknownAttackError(UnknownNameError):
    """No attack is registered under that name."""


class UnknownMetricError(UnknownNameError):
    """No metric is registered under that name."""


class UnknownWorldError(UnknownNameError):
    """No world is registered under that name."""


class RegistryError(ErasekitError, RuntimeError):
    """A name was registered twice in one registry."""


class UnsupportedModelError(ErasekitError, TypeError):
    """A pipeline class erasekit has no text path for."""


class NoTargetsError(ErasekitError, LookupError):
    """The model has no cross-attention key/value projections to edit."""


class MissingWeightsError(ErasekitError, FileNotFoundError):
    """A model or weights file is not available locally."""


class NumericalError(ErasekitError, ArithmeticError):
    """NaN/Inf in weights or embeddings, or a singular / ill-conditioned system."""


class FingerprintMismatchError(ErasekitError, ValueError):
    """An edit was made for another base model than the one it is applied to."""


class EditFileError(ErasekitError, ValueError):
    """An edit file is truncated, not safetensors, or not in the expected layout."""


class EditStateError(ErasekitError, RuntimeError):
    """An edit is applied twice, or removed while not applied."""


class OutputExistsError(ErasekitError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


class OutputError(ErasekitError, OSError):
    """An output folder does not exist or cannot be written."""
