"""erasekit: erase concepts from text-to-image diffusion models, attack the erasure, measure the cost."""

from __future__ import annotations

__version__ = "0.1.0"

from .edit import Edit
from .erase import erase
from .methods import available as list_methods
from .pipeline import load_pipeline

__all__ = ["Edit", "__version__", "erase", "list_methods", "load_pipeline"]
