"""Writing files so that a crash or a power cut leaves either the old bytes or the new ones, never a mix:
temp file beside the target, fsync, rename, fsync of the folder. Used by the orders store and its backups."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_temp(path: Path, data: bytes) -> tuple[str, os.stat_result]:
    """Write `data` to a new temp file beside `path` and fsync it; returns its name and stat."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        write_all(fd, data)
        os.fsync(fd)
        return tmp, os.fstat(fd)
    except BaseException:
        # A failed or interrupted write leaves the old file in place and no stray temp file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` whole or not at all: temp file, fsync, rename, fsync the folder."""
    tmp, _ = write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(folder: Path) -> None:
    # Makes a rename or a new file itself durable across a power cut (POSIX); harmless elsewhere.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
