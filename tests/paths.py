"""Paths the bad-input tests write into."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable_folder(tmp: Path) -> Path:
    """A folder nothing can be written into: a read-only one, or ``/proc`` for root (root writes through
    permission bits, but ``/proc`` refuses new files to anyone)."""
    folder = tmp / "ro"
    folder.mkdir(mode=0o500)
    return Path("/proc") if os.geteuid() == 0 else folder
