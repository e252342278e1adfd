"""The single-writer lock on a state: an exclusive ``flock`` on ``<db>.lock``.

The kernel drops it when the holder dies, however it dies, so a crash never leaves it stale.
Read-only commands only look at it (``held_by_other``) to say whether a daemon is alive.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from syncd.errors import LockHeld, StateError


class StateLock:
    """Single-writer lock: an exclusive ``flock`` on ``<db>.lock``, released by the kernel on death."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            blocked = next((p for p in reversed(self.path.parents) if p.exists() and not p.is_dir()), None)
            why = f"{blocked} is a file, not a directory" if blocked else e.strerror
            raise StateError(f"cannot create the state lock {self.path} ({why})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(f"another syncd (pid {holder}) holds the state lock {self.path}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def held_by_other(self) -> int | None:
        """The pid of another live holder, or None (read-only check for status)."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
