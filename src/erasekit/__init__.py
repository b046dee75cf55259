"""erasekit: erase concepts from text-to-image diffusion models, attack the erasure, measure the cost."""

from __future__ import annotations

from ._version import __version__
from .api import erase
from .edit import Edit
from .methods import available as list_methods
from .worlds import load_pipeline

__all__ = ["Edit", "__version__", "erase", "list_methods", "load_pipeline"]
