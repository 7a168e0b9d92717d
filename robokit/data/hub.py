"""The Hugging Face hub: download a dataset's files (only the requested episodes') and upload one.

Thin on purpose: huggingface_hub does the transfer; robokit decides which files are needed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from robokit.data.meta import CODEBASE_VERSION, DatasetMeta, DatasetNotFoundError

logger = logging.getLogger(__name__)

IGNORE_ON_UPLOAD = [".robokit_tmp/*", ".robokit_cache/*", "**/.*.tmp", ".*.tmp"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("ROBOKIT_HOME", Path.home() / ".cache" / "robokit")) / "datasets"


def files_for_episodes(meta: DatasetMeta, episodes: Sequence[int] | None) -> list[str]:
    """Paths (relative to the dataset root) of the data and video files that hold `episodes`."""
    indices = meta.episodes.column("episode_index").tolist() if episodes is None else sorted(set(int(e) for e in episodes))
    files: set[str] = set()
    for ep in indices:
        files.add(meta.data_file(ep).relative_to(meta.root).as_posix())
        for key in meta.video_keys:
            files.add(meta.video_file(ep, key).relative_to(meta.root).as_posix())
    return sorted(files)


def fetch(repo_id: str, local: Path, allow_patterns: list[str], revision: str | None = None) -> None:
    """Download the files of dataset repo `repo_id` matching `allow_patterns` into `local`.

    A repo or revision the hub does not have, or a hub that cannot be reached (offline, no cached
    copy), raises DatasetNotFoundError saying so, without the hub client's traceback."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        snapshot_download(repo_id, repo_type="dataset", revision=revision, local_dir=local, allow_patterns=allow_patterns)
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DatasetNotFoundError(
            f"{repo_id!r} is not a local folder (no such path) and could not be fetched as a hub dataset repo id "
            f"(revision {revision or 'main'}): {type(e).__name__}: {reason}"
        ) from None


def download(repo_id: str, revision: str | None = None, episodes: Sequence[int] | None = None,
             cache_dir: str | Path | None = None) -> Path:
    """Fetch `repo_id` into `cache_dir/repo_id`: metadata first, then only the needed files."""
    local = Path(cache_dir or default_cache_dir()) / repo_id
    logger.info("fetching %s (revision %s) into %s", repo_id, revision or "main", local)
    fetch(repo_id, local, ["meta/*", "meta/**"], revision=revision)
    meta = DatasetMeta.load(local)
    needed = files_for_episodes(meta, episodes)
    if needed:
        fetch(repo_id, local, needed, revision=revision)
    return local


def push(root: Path, repo_id: str, private: bool = False, revision: str | None = None, token: str | None = None) -> str:
    """Upload a finalized dataset folder; tags the commit with the layout version, as the community does."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="dataset", revision=revision,
                      ignore_patterns=IGNORE_ON_UPLOAD, commit_message="Upload dataset with robokit")
    api.create_tag(repo_id, tag=CODEBASE_VERSION, repo_type="dataset", revision=revision, exist_ok=True)
    return str(url)
