"""Atomic writes (an interrupted run never leaves a file or folder that looks complete), the
output folder's checks, and its lock (one writing process per folder)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import UsageError


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``: an
    interruption leaves the old file (or none), never a half-written one, and no temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_folder_atomic(path: Path, fill: Callable[[Path], None]) -> None:
    """``fill(tmp)`` writes a folder; it then replaces ``path`` (the old one is removed last)."""
    tmp = path.with_name(f".{path.name}.tmp")
    old = path.with_name(f".{path.name}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    fill(tmp)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def check_writable(path: Path, flag: str = "--output") -> None:
    """Raise UsageError (one line, naming ``flag``) if ``path`` cannot be made as a folder: its
    nearest existing ancestor is a file, or a folder we may not write in. Writes nothing."""
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor == path:
        if not path.is_dir():
            raise UsageError(f"{flag} {path}: exists and is not a folder")
    elif not ancestor.is_dir():
        raise UsageError(f"{flag} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):  # also false on a read-only file system
        raise UsageError(f"{flag} {path}: {ancestor} is not writable")


def make_folder(path: Path, flag: str = "--output") -> None:
    """``mkdir -p``, with a failure (permissions, a full disk) as one line naming ``flag``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot create the folder ({error.strerror})") from None


LOCK_NAME = ".lock"
_held: dict[str, tuple[int, int]] = {}  # lock path -> (file descriptor, nesting depth)


@contextmanager
def folder_lock(folder: Path, flag: str = "--output") -> Iterator[None]:
    """Hold ``folder/.lock`` (making the folder if needed) while writing in it, so that a second
    process on the same folder stops with one line instead of interleaving its writes.

    The file holds the owner's pid (for the message); the lock itself is an ``flock``, which the
    kernel drops when its owner dies, so a lock left by a killed process is simply taken over.
    Re-entrant within one process (``advnlp demo`` holds it around ``compare``).
    """
    make_folder(folder, flag)
    path = str(folder / LOCK_NAME)
    if path in _held:
        fd, depth = _held[path]
        _held[path] = (fd, depth + 1)
    else:
        _held[path] = (_acquire(path, folder, flag), 1)
    try:
        yield
    finally:
        fd, depth = _held[path]
        if depth > 1:
            _held[path] = (fd, depth - 1)
        else:
            del _held[path]
            Path(path).unlink(missing_ok=True)  # before close: nobody can lock the old file
            os.close(fd)


def _acquire(path: str, folder: Path, flag: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UsageError(f"{flag} {folder}: cannot write in it ({error.strerror})") from None
        try:
            if not _lock(fd):
                owner = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                raise UsageError(
                    f"{flag} {folder}: in use by another advnlp process (pid {owner}, "
                    f"lock {path}); wait for it to finish or choose another folder"
                )
            # The holder before us may have removed the file between our open and our lock:
            # then we hold a lock on a file nobody else sees, so try again.
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _lock(fd: int) -> bool:
    """Take the lock without waiting; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: the pid in the file is all there is
        return _pid_is_stale(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock (some network mounts)
        return _pid_is_stale(fd)
    return True


def _pid_is_stale(fd: int) -> bool:
    """True if the pid in the lock file is ours, missing, or no longer a running process."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    if not text.isdigit() or int(text) == os.getpid():
        return True
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
