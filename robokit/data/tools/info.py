"""What a dataset holds: `robokit dataset info ROOT|REPO_ID`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from robokit.data.meta import DatasetMeta, DatasetNotFoundError

logger = logging.getLogger(__name__)


def resolve_root(root_or_repo_id: str | Path, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """A local folder as is; a hub repo id ("user/name") -> its metadata downloaded into the cache."""
    root = Path(root_or_repo_id)
    if root.exists():
        return root
    from robokit.data.dataset import REPO_ID

    if not REPO_ID.match(str(root_or_repo_id)):
        raise DatasetNotFoundError(f"{str(root_or_repo_id)!r}: no such folder, and it is not a hub repo id (user/name)")
    from robokit.data.hub import default_cache_dir, fetch

    local = Path(cache_dir or default_cache_dir()) / str(root_or_repo_id)
    fetch(str(root_or_repo_id), local, ["meta/*", "meta/**"], revision=revision)
    return local


def size_on_disk(root: Path) -> dict[str, int]:
    """Bytes under data/, videos/, meta/ and in all (hidden caches and temp files excluded)."""
    sizes = {"data": 0, "videos": 0, "meta": 0, "total": 0}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        top = Path(dirpath).relative_to(root).parts[:1]
        for name in filenames:
            if name.startswith("."):
                continue
            size = (Path(dirpath) / name).stat().st_size
            sizes["total"] += size
            if top and top[0] in sizes:
                sizes[top[0]] += size
    return sizes


def dataset_info(root_or_repo_id: str | Path, revision: str | None = None) -> dict[str, Any]:
    meta = DatasetMeta.load(resolve_root(root_or_repo_id, revision))
    eps = meta.episodes
    lengths = eps.column("length") if len(eps) else []
    episodes_per_task: dict[str, int] = {t: 0 for t in meta.task_list}
    if "tasks" in eps.column_names:
        for tasks in eps.column("tasks"):
            for t in tasks if tasks is not None else []:
                episodes_per_task[t] = episodes_per_task.get(t, 0) + 1
    features = {}
    for name, spec in meta.features.items():
        entry = {"dtype": spec["dtype"], "shape": list(spec["shape"]), "names": spec.get("names")}
        if spec["dtype"] == "video":
            info = spec.get("info") or {}
            entry["codec"] = info.get("video.codec")
            entry["pix_fmt"] = info.get("video.pix_fmt")
        features[name] = entry
    return {
        "root": str(meta.root),
        "codebase_version": meta.version,
        "robot_type": meta.robot_type,
        "fps": meta.fps,
        "episodes": meta.total_episodes,
        "frames": meta.total_frames,
        "duration_s": meta.total_frames / meta.fps,
        "episode_length": {"min": int(min(lengths)), "max": int(max(lengths)), "mean": float(sum(lengths) / len(lengths))} if len(lengths) else None,
        "tasks": [{"task_index": i, "task": t, "episodes": episodes_per_task.get(t, 0)} for i, t in enumerate(meta.task_list)],
        "features": features,
        "cameras": meta.camera_keys,
        "size_bytes": size_on_disk(meta.root),
    }


def format_info(info: dict[str, Any]) -> str:
    def mb(n: int) -> str:
        return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"

    size = info["size_bytes"]
    lengths = info["episode_length"]
    lines = [
        f"{info['root']}  ({info['codebase_version']})",
        f"  robot type   {info['robot_type']}",
        f"  fps          {info['fps']}",
        f"  episodes     {info['episodes']}"
        + (f"  (length {lengths['min']}-{lengths['max']}, mean {lengths['mean']:.1f} frames)" if lengths else ""),
        f"  frames       {info['frames']}  ({info['duration_s']:.1f} s)",
        f"  size on disk {mb(size['total'])}  (data {mb(size['data'])}, videos {mb(size['videos'])}, meta {mb(size['meta'])})",
        f"  tasks        {len(info['tasks'])}",
    ]
    lines += [f"    [{t['task_index']}] {t['task']!r}  ({t['episodes']} episodes)" for t in info["tasks"]]
    lines.append("  features")
    width = max(len(k) for k in info["features"])
    for name, spec in info["features"].items():
        extra = f"  {spec['codec']}/{spec['pix_fmt']}" if spec["dtype"] == "video" else ""
        names = spec["names"]
        shown = "" if not names or spec["dtype"] in ("video", "image") else f"  {names if len(names) <= 8 else names[:8] + ['...']}"
        lines.append(f"    {name.ljust(width)}  {spec['dtype']:<8} {spec['shape']!s:<14}{extra}{shown}")
    return "\n".join(lines)
