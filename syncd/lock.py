"""The single-writer lock on a state: ``<db>.lock`` beside the real database file.

A writer holds an exclusive ``flock`` and an exclusive open-file-description lock (``F_OFD_SETLK``)
on it; the kernel drops both when the holder dies, however it dies, so a crash never leaves them
stale. Read-only commands only *ask* (``F_OFD_GETLK``), which takes nothing: a ``syncd status``
can never make a writer that starts at the same moment fail.

The lock file also says whether its last holder had the state open when it stopped (``PID open``):
a writer that finds that mark knows the previous one died, and checks the state before using it.
The lock is on the resolved path, so two configurations that reach one database through a symlink
share one lock.
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

from syncd.errors import LockHeld, StateError

# struct flock: l_type, l_whence, l_start, l_len (0: the whole file), l_pid (0 for OFD locks).
_FLOCK = "hhqqi4x"
OPEN_MARK = " open"


def _lock_spec(kind: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0)


def lock_path(db_path: Path) -> Path:
    real = db_path.resolve()  # one state, one lock, however the path reaches it
    return real.with_name(real.name + ".lock")


class StateLock:
    """Single-writer lock, released by the kernel on death."""

    def __init__(self, db_path: Path) -> None:
        self.path = lock_path(db_path)
        self._fd: int | None = None
        self.unclean = False  # the previous holder died with the state open

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
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _lock_spec(fcntl.F_WRLCK))
        except (BlockingIOError, PermissionError):
            holder = _holder(fd)
            os.close(fd)
            raise LockHeld(f"another syncd (pid {holder or 'unknown'}) holds the state lock {self.path}") from None
        previous = os.pread(fd, 64, 0).decode(errors="replace").strip()
        self.unclean = previous.endswith(OPEN_MARK)
        self._fd = fd
        # An unclean mark stays until the state has been checked and opened (mark_open): a check that
        # fails, or a death before it ends, leaves the next writer to check again.
        self._write(f"{os.getpid()}{OPEN_MARK}" if self.unclean else str(os.getpid()))

    def _write(self, text: str) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)
        os.fsync(self._fd)

    def mark_open(self) -> None:
        """The state is open for writing: a death from here on is an unclean stop."""
        self._write(f"{os.getpid()}{OPEN_MARK}")

    def mark_closed(self) -> None:
        """Called before the state is closed: the writer is stopping cleanly."""
        if self._fd is not None:
            self._write(str(os.getpid()))

    def held_by_other(self) -> int | None:
        """The pid of another live holder (-1 when it cannot be read), or None. Takes no lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _lock_spec(fcntl.F_WRLCK))
            if struct.unpack(_FLOCK, answer)[0] == fcntl.F_UNLCK:
                return None
            return _holder(fd) or -1
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 64, 0).decode(errors="replace").strip().removesuffix(OPEN_MARK)
    return int(text) if text.isdigit() else None
