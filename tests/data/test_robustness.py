"""Hostile input and faults: empty datasets, frames that cannot be stored, failed saves, corrupted
files, file modes, merge and path mistakes. Each case once broke a dataset or gave a traceback
instead of a message (issue 17); crash trials by SIGKILL are in test_crash_safety.py."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import stat
from pathlib import Path

import av
import numpy as np
import pytest

from robokit.data import RobotDataset
from robokit.data.features import FeatureError
from robokit.data.meta import DatasetError
from robokit.data.synthetic import SyntheticEpisode, record_synthetic_dataset, synthetic_features
from robokit.data.tools.check import check_dataset
from robokit.data.video_decode import VideoDecodeError


def _record(root: Path, lengths=(5,), **kwargs) -> Path:
    record_synthetic_dataset(root, codec="h264", lengths=lengths, height=16, width=24, **kwargs)
    return root


def _add_episode(ds, seed: int, n: int = 4, task: str = "move the arm") -> None:
    episode = SyntheticEpisode(ds.features, seed=seed)
    for i in range(n):
        ds.add_frame(episode.frame(i, ds.fps, task=task))


# ----------------------------------------------------------------------------- empty datasets
def test_a_dataset_with_no_episode_opens_resumes_and_takes_episodes(tmp_path):
    root = tmp_path / "ds"
    features = synthetic_features(height=16, width=24)
    RobotDataset.create(root, fps=30, features=features, video_codec="h264").finalize()

    ds = RobotDataset(root)
    assert (ds.num_episodes, len(ds), ds.meta.task_list) == (0, 0, [])
    report = check_dataset(root, progress=False)
    assert report.ok and any("no episodes" in w for w in report.warnings), report.render()

    ds = RobotDataset.resume(root, video_codec="h264")
    _add_episode(ds, seed=0)
    assert ds.save_episode() == 0
    ds.finalize()
    assert RobotDataset(root).num_episodes == 1
    assert check_dataset(root, progress=False).ok


def test_create_accepts_a_folder_without_a_committed_episode_only(tmp_path):
    root = tmp_path / "ds"
    features = synthetic_features(height=16, width=24)
    ds = RobotDataset.create(root, fps=30, features=features, video_codec="h264")
    _add_episode(ds, seed=0)  # recorded, never saved: like a lost servo port during episode 0
    ds.finalize()
    ds = RobotDataset.create(root, fps=15, features=features, video_codec="h264")  # replaces the empty dataset
    _add_episode(ds, seed=1)
    ds.save_episode()
    ds.finalize()
    assert RobotDataset(root).fps == 15

    # A committed episode, or a file that no dataset writer makes, keeps the folder.
    with pytest.raises(FileExistsError, match="resume"):
        RobotDataset.create(root, fps=30, features=features)
    other = tmp_path / "other"
    (other / "meta").mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        RobotDataset.create(other, fps=30, features=features)
    assert (other / "notes.txt").read_text() == "mine"


def test_resume_of_a_folder_without_info_json_says_to_create(tmp_path):
    root = tmp_path / "ds"
    (root / "meta").mkdir(parents=True)  # a run killed inside create(), before info.json
    with pytest.raises(FileNotFoundError, match="nothing to resume; create it"):
        RobotDataset.resume(root)
    RobotDataset.create(root, fps=30, features=synthetic_features(height=16, width=24)).finalize()
    assert RobotDataset(root).num_episodes == 0


def test_create_keeps_a_folder_whose_info_counts_episodes(tmp_path):
    root = _record(tmp_path / "ds")
    shutil.rmtree(root / "meta/episodes")  # damaged, but info.json says frames were recorded here
    with pytest.raises(FileExistsError):
        RobotDataset.create(root, fps=30, features=synthetic_features(height=16, width=24))
    assert (root / "data/chunk-000/file-000.parquet").is_file()


# ----------------------------------------------------------------------------- frames that cannot be stored
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": None},
    "effort": {"dtype": "float16", "shape": [2], "names": None},
    "gear": {"dtype": "uint8", "shape": [1], "names": None},
    "action": {"dtype": "float32", "shape": [3], "names": None},
}


def _good_frame() -> dict:
    return {
        "observation.state": np.array([0.1, 0.2, 0.3], np.float64),  # float64 values that fit float32: accepted
        "effort": np.array([1.5, -2.0], np.float32),
        "gear": np.int64(3),
        "action": np.zeros(3, np.float32),
        "task": "push",
    }


BAD_VALUES = [
    ("observation.state", np.array([0.0, 1e39, 0.0]), r"'observation.state' has the value 1e\+39 at flat position 1, outside the range of its declared dtype float32"),
    ("observation.state", np.array([0.0, 0.0, -1e300]), r"value -1e\+300 at flat position 2, outside the range of .* float32"),
    ("effort", np.array([70000.0, 0.0], np.float32), r"'effort' has the value 70000.0 at flat position 0, outside the range of its declared dtype float16"),
    ("gear", np.int64(300), r"'gear' has the value 300 .* outside the range of its declared dtype uint8 \(0..255\)"),
    ("gear", np.int64(-1), r"'gear' has the value -1 .* uint8"),
    ("action", np.array([0.0, np.inf, 0.0], np.float32), r"'action' has the non-finite value inf at flat position 1"),
    ("action", np.array([np.nan, 0.0, 0.0]), r"'action' has the non-finite value nan at flat position 0"),
]


@pytest.mark.parametrize("key, value, message", BAD_VALUES, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD_VALUES])
def test_add_frame_rejects_values_the_dtype_cannot_hold(tmp_path, key, value, message):
    ds = RobotDataset.create(tmp_path / "ds", fps=10, features=FEATURES)
    for _ in range(2):
        ds.add_frame(_good_frame())
    with pytest.raises(FeatureError, match=message) as caught:
        ds.add_frame(_good_frame() | {key: value})
    assert "(frame 2 of the episode; the frame was not added)" in str(caught.value)
    ds.add_frame(_good_frame())
    assert ds.save_episode() == 0
    ds.add_frame(_good_frame())
    assert ds.save_episode() == 1
    ds.finalize()
    read = RobotDataset(tmp_path / "ds")
    assert read.episodes == [0, 1] and len(read) == 4
    assert read[0]["gear"].item() == 3
    assert check_dataset(tmp_path / "ds", progress=False).ok


def test_allow_nonfinite_is_refused_at_create(tmp_path):
    features = {"x": {"dtype": "float32", "shape": [1], "names": None, "info": {"allow_nonfinite": True}}}
    with pytest.raises(FeatureError, match="'x' declares info.allow_nonfinite"):
        RobotDataset.create(tmp_path / "ds", fps=10, features=features)


# ----------------------------------------------------------------------------- failed saves
@pytest.mark.parametrize("wait", [True, False])
def test_a_failed_save_changes_nothing_and_uses_up_no_index(tmp_path, wait):
    root = tmp_path / "ds"
    features = synthetic_features(height=16, width=24)
    ds = RobotDataset.create(root, fps=30, features=features, video_codec="h264")
    _add_episode(ds, seed=0, task="first task")
    ds.save_episode()
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    # A real fault in the middle of the commit: episode 1 has a new task, and meta/tasks.parquet
    # cannot be replaced (a folder stands in its way) after the videos and data rows were appended.
    tasks = root / "meta/tasks.parquet"
    tasks.rename(tmp_path / "tasks.parquet")
    tasks.mkdir()
    _add_episode(ds, seed=1, task="second task")
    with pytest.raises(RuntimeError, match=r"saving episode 1 .* failed: .*Its 4 frames were discarded \(the episode "
                                           r"buffer was cleared\); the dataset is as it was, with 1 episodes, and index 1 is still free"):
        ds.save_episode(wait=wait)
        ds.finalize()  # with wait=False the failure surfaces here
    assert ds.episode_buffer_size == 0 and ds.num_episodes == 1
    tasks.rmdir()
    (tmp_path / "tasks.parquet").rename(tasks)
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert after.keys() == before.keys(), sorted(map(str, after.keys() ^ before.keys()))
    assert all(after[p] == before[p] for p in before), [str(p) for p in before if after[p] != before[p]]

    ds = RobotDataset.resume(root, video_codec="h264") if ds.writer._finalized else ds
    _add_episode(ds, seed=2, task="second task")
    assert ds.save_episode() == 1
    ds.finalize()
    read = RobotDataset(root)
    assert read.episodes == [0, 1] and read.meta.task_list == ["first task", "second task"]
    report = check_dataset(root, full=True, progress=False)
    assert report.ok, report.render()


# ----------------------------------------------------------------------------- corrupted files
def test_missing_episode_metadata_is_an_error_not_an_empty_dataset(tmp_path):
    root = _record(tmp_path / "ds", lengths=(5, 3))
    shutil.rmtree(root / "meta/episodes")
    with pytest.raises(DatasetError, match=r"info.json counts 2 episodes \(8 frames\), but .*meta/episodes holds 0 "
                                           r"\(no file in meta/episodes/"):
        RobotDataset(root)
    with pytest.raises(DatasetError, match="counts 2 episodes"):
        RobotDataset.resume(root)
    report = check_dataset(root, progress=False)
    assert not report.ok and "counts 2 episodes" in report.render()


@pytest.mark.parametrize("use_videos", [True, False])
@pytest.mark.parametrize("key, shape, message", [
    ("observation.state", [7], (r"file-000.parquet: column 'observation.state' stores shape \[6\] per frame .* declares "
                                r"'observation.state' as float32 with shape \[7\]")),
    ("observation.state", [3, 2], r"file-000.parquet: column 'observation.state' stores shape \[6\] per frame"),
    ("observation.images.front", [8, 24, 3], None),
])
def test_a_changed_shape_in_info_json_names_the_file(tmp_path, use_videos, key, shape, message):
    root = _record(tmp_path / "ds", use_videos=use_videos)
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"][key]["shape"] = shape
    info_path.write_text(json.dumps(info))
    if message is None:  # a camera: the video's recorded info, or the decoded PNG, disagrees
        message = (r"info.json: video feature 'observation.images.front' declares shape \[8, 24, 3\] .* says \[16, 24, 3\]"
                   if use_videos else
                   r"file-000.parquet: 'observation.images.front' frames decode to .* \(16, 24, 3\), but .*info.json "
                   r"declares shape \[8, 24, 3\]")
    with pytest.raises(DatasetError, match=message):
        RobotDataset(root)[0]
    assert not check_dataset(root, progress=False).ok


def _flip_packet_bytes(path: Path, frames: list[int]) -> None:
    """Corrupt the compressed data of the given frames in place (the container stays readable)."""
    with av.open(str(path)) as container:
        packets = sorted((p.pts, p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size)
    data = bytearray(path.read_bytes())
    for frame in frames:
        _, pos, size = packets[frame]
        for i in range(pos + size // 4, pos + size, 2):
            data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_check_full_finds_frames_corrupted_mid_file(tmp_path, capsys):
    from robokit.commands.dataset import main
    from robokit.data.tools.check import _ranges

    root = _record(tmp_path / "ds", lengths=(40,))
    _flip_packet_bytes(root / "videos/observation.images.front/chunk-000/file-000.mp4", [20, 21])
    ds = RobotDataset(root)
    unreadable = []
    for i in range(len(ds)):
        try:
            ds[i]
        except VideoDecodeError as e:
            assert "cannot decode video" in str(e)
            unreadable.append(i)
    assert unreadable and 0 not in unreadable and 39 not in unreadable  # the quick check cannot see them

    assert main(["check", str(root), "--full"]) == 1
    out = capsys.readouterr().out
    assert (f"FAULT observation.images.front: episode 0: frame(s) {_ranges(unreadable)} of 40 do not decode "
            "(videos/observation.images.front/chunk-000/file-000.mp4 from 0.000 s)") in out
    assert "FAILED: 1 fault(s)" in out
    assert main(["check", str(root)]) == 0
    assert "--full decodes every frame" in capsys.readouterr().out


# ----------------------------------------------------------------------------- file modes
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_dataset_files_are_readable_by_others_as_the_umask_allows(tmp_path, umask_022):
    root = _record(tmp_path / "ds", lengths=(3, 2))
    modes = {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}
    assert "meta/info.json" in modes and "meta/episodes/chunk-000/file-000.parquet" in modes
    assert {k: oct(m) for k, m in modes.items() if m != 0o644} == {}


def test_decompressed_lerobot_weights_follow_the_umask(tmp_path, umask_022, monkeypatch):
    from robokit.policies.lerobot_compat import weights_file

    monkeypatch.setenv("ROBOKIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "model.safetensors.xz").write_bytes(lzma.compress(b"weights" * 100))
    target = weights_file(folder)
    assert target.read_bytes() == b"weights" * 100
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


# ----------------------------------------------------------------------------- mistakes
def test_merging_datasets_of_different_fps_names_both(tmp_path):
    from robokit.data.tools.merge import merge_datasets

    a = _record(tmp_path / "a", fps=30)
    b = _record(tmp_path / "b", fps=10)
    with pytest.raises(ValueError) as caught:
        merge_datasets([a, b], tmp_path / "out", progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{a} has 30 fps and {b} has 10 fps; datasets must share fps" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # nothing was started


def test_a_missing_dataset_path_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"dataset folder 'nope' does not exist, and it is not a hub repo id"):
        RobotDataset("nope")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no test reaches the network
    with pytest.raises(FileNotFoundError, match=r"'user/nope' is not a local folder \(no such path\) and could not be "
                                                r"fetched as a hub dataset repo id"):
        RobotDataset("user/nope", cache_dir=tmp_path / "cache")


def test_a_missing_video_file_is_named_when_the_dataset_opens(tmp_path):
    root = _record(tmp_path / "ds", lengths=(3, 2))
    video = root / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    video.unlink()
    with pytest.raises(DatasetError, match=rf"video file {video} is missing; meta/episodes places camera "
                                           r"'observation.images.wrist' of episodes \[0, 1\] in it"):
        RobotDataset(root)


def test_missing_stats_json_falls_back_to_the_episode_stats(tmp_path):
    root = _record(tmp_path / "ds", lengths=(3, 2))
    stats = RobotDataset(root).meta.stats
    (root / "meta/stats.json").unlink()
    again = RobotDataset(root).meta.stats
    assert again.keys() == stats.keys()
    for key in stats:
        for name in ("min", "max", "mean", "std", "count"):
            np.testing.assert_allclose(again[key][name], stats[key][name], rtol=1e-6)
    assert not check_dataset(root, progress=False).ok  # the file is still missing on disk
    RobotDataset.resume(root, video_codec="h264").finalize()  # repairs it
    assert (root / "meta/stats.json").is_file() and check_dataset(root, progress=False).ok


def test_record_resumes_after_the_port_was_lost_during_episode_0(tmp_path):
    """`robokit record` whose servo port is lost before the first save leaves an empty dataset that
    `record --resume` continues (it used to fail with "missing file meta/tasks.parquet")."""
    pytest.importorskip("scservo_sdk")
    from robokit.cameras import CameraConfig
    from robokit.control.record import record
    from robokit.motors import PortLostError
    from robokit.robots.registry import make_robot
    from robokit.robots.virtual import VirtualArm

    cal, root = tmp_path / "cal", tmp_path / "ds"
    options = dict(fps=30, episode_time_s=0.2, reset_time_s=0, keyboard=False, video_codec="h264")
    with VirtualArm("so101", "f", cal) as follower:
        robot = make_robot("so101_follower", port=follower.port, id="f", calibration_dir=str(cal),
                           cameras={"front": CameraConfig("synthetic", width=32, height=24, fps=30)})
        robot.connect()

        class Unplugging:  # a policy that drives the arm until the cable is pulled at its 3rd step
            calls = 0

            def __call__(self, observation):
                Unplugging.calls += 1
                if Unplugging.calls == 3:
                    follower.emulator.close()
                return {k: observation[k] for k in robot.action_features}

        with pytest.raises(PortLostError):
            record(robot, None, root, "wave", num_episodes=1, policy=Unplugging(), **options)
        if robot.is_connected:
            robot.disconnect()
    assert RobotDataset(root).num_episodes == 0

    with VirtualArm("so101", "f", cal) as follower:
        robot = make_robot("so101_follower", port=follower.port, id="f", calibration_dir=str(cal),
                           cameras={"front": CameraConfig("synthetic", width=32, height=24, fps=30)})
        robot.connect()
        record(robot, None, root, "wave", num_episodes=1, resume=True, **options)
        robot.disconnect()
    ds = RobotDataset(root)
    assert ds.num_episodes == 1 and len(ds) == 6
    assert check_dataset(root, progress=False).ok
