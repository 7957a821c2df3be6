"""Rotating copies of `orders.json` in `data/backups/` (docs/storage.md): taken by the orders store's
background thread after it writes the file (at most hourly), never by a request, and read back by
`scripts/restore-orders`. Each name carries when it was taken and the journal line it includes:
`orders-20261122T100000Z-s000000001234.json`, so a restore can replay the journal from there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from durable import fsync_dir

KEEP_HOURLY = 48  # the newest two days, one an hour
KEEP_DAILY = 60  # then the first of each day, two months back
_NAME = re.compile(r"^orders-(\d{8}T\d{6}Z)(?:-s(\d+))?(?:-([a-z-]+))?\.json$")


@dataclass(frozen=True)
class Backup:
    path: Path
    taken: datetime
    seq: int | None  # the last journal line it includes; None when unknown (a copy taken before a restore)


def list_backups(folder: Path) -> list[Backup]:
    """The backups in `folder`, oldest first."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder):
            match = _NAME.match(name)
            if match:
                taken = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                found.append(Backup(folder / name, taken, int(match.group(2)) if match.group(2) else None))
    return sorted(found, key=lambda b: (b.taken, b.path.name))


def newest(folder: Path) -> Backup | None:
    """The newest backup a journal replay can start from."""
    usable = [b for b in list_backups(folder) if b.seq is not None]
    return usable[-1] if usable else None


def take(source: Path, folder: Path, seq: int | None, note: str = "") -> Backup:
    """Copy `source` into `folder` (temp file, fsync, rename): a whole file or none."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = datetime.now(UTC).replace(microsecond=0)
    name = f"orders-{taken:%Y%m%dT%H%M%SZ}" + (f"-s{seq:012d}" if seq is not None else "")
    name += f"-{note}.json" if note else ".json"
    fd, tmp = tempfile.mkstemp(prefix=".backup.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / name)
        fsync_dir(folder)  # journal segments are deleted once a backup covers them: it must really be there
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Backup(folder / name, taken, seq)


def prune(folder: Path) -> list[Path]:
    """Keep the newest KEEP_HOURLY backups and the first of each of the last KEEP_DAILY days; delete the
    rest. Copies taken before a restore are kept until an operator removes them."""
    regular = [b for b in list_backups(folder) if b.seq is not None]
    keep = {b.path for b in regular[-KEEP_HOURLY:]}
    first_of_day: dict[str, Path] = {}
    for b in regular:
        first_of_day.setdefault(f"{b.taken:%Y%m%d}", b.path)
    keep.update(list(first_of_day.values())[-KEEP_DAILY:])
    removed = [b.path for b in regular if b.path not in keep]
    for path in removed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return removed
