"""The run folder before any image: is it writable, create it, and hold it for one run at a time.

:func:`make_folder` creates an output folder after :func:`erasekit.io.check_writable`; :class:`RunLock` keeps
two runs out of one folder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, ClassVar

from erasekit.errors import OutputError
from erasekit.io import check_writable

logger = logging.getLogger(__name__)

LOCK_FILE = ".erasekit.lock"


class RunLock:
    """Holds ``root`` for one run at a time: ``root/.erasekit.lock``, created with O_EXCL, holds the pid.

    A second run into the same folder is refused with a message naming the first (it would draw every
    image again); a lock left by a process that no longer runs (``kill -9``) is taken over. The lock is
    removed on exit, Ctrl-C included (and ``root`` too if the lock created it and nothing else was
    written). Re-entrant within a process (``evaluate`` holds it around ``generate_images``, which takes
    it too). Creates ``root`` if needed.

    Raises:
        OutputError: another live process holds the folder, or it cannot be created or written.
    """

    _held: ClassVar[dict[Path, int]] = {}  # lock file -> depth, in this process

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_FILE

    def __enter__(self) -> RunLock:
        key = self.path.absolute()
        if key in RunLock._held:
            RunLock._held[key] += 1
            return self
        self._made = not self.root.exists()
        make_folder(self.root)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = _lock_owner(self.path)
                if owner is not None:
                    raise OutputError(
                        f"{self.root} is in use by another erasekit run ({owner}); two runs would each draw every "
                        f"image. Wait for it to finish, or choose another -o. If no erasekit run uses this folder, "
                        f"delete {self.path}."
                    ) from None
                logger.info("taking over %s: the process that held it has ended", self.path)
                self.path.unlink(missing_ok=True)
                continue
            except OSError as err:
                raise OutputError(f"cannot write to {self.root} ({err.strerror or err}): choose another -o.") from err
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}, f)
            break
        RunLock._held[key] = 1
        return self

    def __exit__(self, *exc: object) -> None:
        key = self.path.absolute()
        RunLock._held[key] -= 1
        if RunLock._held[key] == 0:
            del RunLock._held[key]
            if _lock_data(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            if self._made:  # a run refused before its first file leaves no empty folder behind
                try:
                    self.root.rmdir()
                except OSError:
                    pass


def _lock_data(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _lock_owner(path: Path) -> str | None:
    """Returns who holds the lock file ``path`` ("pid 12 on host h since 10:02"), None if no live process does."""
    data = _lock_data(path)
    pid, host = data.get("pid"), data.get("host")
    if not isinstance(pid, int):  # being written right now, or garbage: stale once it is a few seconds old
        try:
            return "a process starting now" if time.time() - path.stat().st_mtime < 10 else None
        except FileNotFoundError:
            return None
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(data.get("since") or 0))
    who = f"pid {pid} on host {host}, since {since}"
    if host != socket.gethostname():
        return who  # cannot tell from here whether it still runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return who  # runs, as another user
    return who


def make_folder(folder: str | os.PathLike[str]) -> Path:
    """Creates ``folder`` (and its parents) after :func:`erasekit.io.check_writable`; returns it.

    Raises:
        OutputError: it cannot be created or written.
    """
    check_writable(folder)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder {folder}: {err.strerror or err}. Choose another -o.") from err
    return Path(folder)
