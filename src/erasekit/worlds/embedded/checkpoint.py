"""Resume checkpoints of training: written atomically, so a kill mid-write leaves the previous one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...io import atomic_write


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Writes ``state`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """Returns the state saved at ``path``, or None when there is none."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
