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
    from huggingface_hub import HfApi, constants

    where = (f"push of dataset {str(root)!r} to {repo_id!r} (the dataset is complete on disk; push it again "
             f"with RobotDataset({str(root)!r}).push_to_hub({repo_id!r}))")
    if constants.HF_HUB_OFFLINE:
        raise ConnectionError(f"{where}: the hub is offline here (HF_HUB_OFFLINE is set); unset it to upload")
    api = HfApi(token=token)
    with push_errors(where):
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        api.upload_folder(folder_path=str(root), repo_id=repo_id, repo_type="dataset", revision=revision,
                          ignore_patterns=IGNORE_ON_UPLOAD, commit_message="Upload dataset with robokit")
        api.create_tag(repo_id, tag=CODEBASE_VERSION, repo_type="dataset", revision=revision, exist_ok=True)
    return str(url)


class push_errors:
    """huggingface_hub's offline / connection / auth failures of an upload as one-line ConnectionError /
    PermissionError starting with `where` (e.g. "push-policy 'me/act'")."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None:
            return False
        from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

        where = self.where
        if isinstance(err, LocalTokenNotFoundError):
            raise PermissionError(f"{where}: not logged in to the hub; run `huggingface-cli login`, set HF_TOKEN "
                                  "or pass --token") from None
        if isinstance(err, HfHubHTTPError):
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status in (401, 403):
                raise PermissionError(f"{where}: the hub refused the token (HTTP {status}); it needs write access "
                                      "to the repo (`huggingface-cli login`, HF_TOKEN or --token)") from None
            return False
        if type(err).__name__ == "OfflineModeIsEnabled":
            raise ConnectionError(f"{where}: the hub is offline here (HF_HUB_OFFLINE is set); unset it to upload") from None
        if isinstance(err, OSError):  # DNS, refused connections and timeouts
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConnectionError(f"{where}: cannot reach the hub ({type(err).__name__}: {first}); "
                                  "check the network (and HF_HUB_OFFLINE)") from None
        return False
