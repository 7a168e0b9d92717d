"""Files become visible only when complete: write to a temporary name in the same folder, then rename.

`os.replace` is atomic on POSIX within one filesystem, so a reader (or a process restarted after
SIGKILL) sees either the old file or the new one, never a half-written one.

The temporary file is created with mode 0666 less the process umask, like any file `open()` makes
(not `tempfile.mkstemp`'s 0600): a dataset or cache written by one user stays readable by the others
exactly as the user's umask allows.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable


def create_temp_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create a new empty file `<prefix><random><suffix>` in `folder` (mode 0666 & ~umask); returns its path."""
    for _ in range(100):
        path = Path(folder) / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"could not create a temporary file in {folder}: 100 random names were taken")


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str | None = None) -> None:
    """Call `write(tmp_path)` then rename tmp_path to `path`; the temp file is removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = create_temp_file(path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp")
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")

    atomic_write(path, write, suffix=".json.tmp")


def write_parquet(path: Path, table) -> None:
    import pyarrow.parquet as pq

    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="snappy"), suffix=".parquet.tmp")


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files left by a killed writer (names `.<name>.*.tmp`). Returns how many."""
    count = 0
    for tmp in Path(folder).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            count += 1
    return count


class Rollback:
    """Put files back as they were if a multi-file update fails part-way.

    `keep(path)` before replacing `path` (atomically, by rename) records its current version as a
    hard link (no copy) or its absence; `restore()` puts every recorded file back, `discard()`
    forgets them. A kill in between leaves only `.<name>.*.tmp` links, which
    `remove_stale_temp_files` deletes.
    """

    def __init__(self):
        self._kept: dict[Path, Path | None] = {}

    def keep(self, path: Path) -> None:
        path = Path(path)
        if path in self._kept:
            return
        if not path.exists():
            self._kept[path] = None
            return
        link = path.with_name(f".{path.name}.{secrets.token_hex(6)}.rollback.tmp")
        try:
            os.link(path, link)
        except OSError:  # a filesystem without hard links: this file cannot be put back
            return
        self._kept[path] = link

    def restore(self) -> None:
        for path, link in self._kept.items():
            if link is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(link, path)
        self._kept.clear()

    def discard(self) -> None:
        for link in self._kept.values():
            if link is not None:
                link.unlink(missing_ok=True)
        self._kept.clear()
