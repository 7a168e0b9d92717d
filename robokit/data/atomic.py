"""Files become visible only when complete: write to a temporary name in the same folder, then rename.

`os.replace` is atomic on POSIX within one filesystem, so a reader (or a process restarted after
SIGKILL) sees either the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str | None = None) -> None:
    """Call `write(tmp_path)` then rename tmp_path to `path`; the temp file is removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
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
