"""Record episodes from a robot (driven by a teleoperator) into a RobotDataset, and replay them.

Each episode runs `episode_time_s` at `fps`: observation -> teleop action -> send -> add_frame;
then `reset_time_s` of teleoperation without recording while the scene is reset. Keys (when a
keyboard is available): right arrow / "n" = end the episode now, left arrow / "r" = re-record it,
Esc / "q" = stop. Episodes saved before an error (e.g. an unplugged bus) stay intact on disk.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robokit.control.dataset_features import build_dataset_frame, frame_to_action, hw_to_dataset_features
from robokit.control.timing import LoopTimer
from robokit.robots.robot import Robot
from robokit.teleoperators.teleoperator import Teleoperator

logger = logging.getLogger(__name__)


@dataclass
class RecordEvents:
    exit_early: bool = False
    """End the current phase (episode or reset) now."""
    rerecord_episode: bool = False
    """Drop the current episode and record it again."""
    stop_recording: bool = False
    """Stop after the current phase."""

    def press(self, key: str) -> None:
        if key in ("right", "n"):
            self.exit_early = True
        elif key in ("left", "r"):
            self.rerecord_episode = self.exit_early = True
        elif key in ("esc", "q"):
            self.stop_recording = self.exit_early = True


def start_keyboard_listener(events: RecordEvents) -> Any | None:
    """Listen for keys: pynput with a display, else single letters + Enter on an interactive stdin, else none.

    pynput is imported only here, so importing robokit never needs a display.
    """
    if os.environ.get("DISPLAY") or sys.platform == "darwin":
        try:
            from pynput import keyboard

            names = {keyboard.Key.right: "right", keyboard.Key.left: "left", keyboard.Key.esc: "esc"}
            listener = keyboard.Listener(
                on_press=lambda key: events.press(names.get(key, getattr(key, "char", "") or ""))
            )
            listener.start()
            print("Keys: → next episode, ← re-record, Esc stop")
            return listener
        except Exception as exc:  # no pynput, or no usable display
            logger.info("keyboard listener unavailable (%s); using stdin", exc)
    if sys.stdin is not None and sys.stdin.isatty():

        def read_stdin():
            for line in sys.stdin:
                events.press(line.strip().lower()[:1])

        threading.Thread(target=read_stdin, daemon=True, name="record-keys").start()
        print("Keys: n+Enter next episode, r+Enter re-record, q+Enter stop")
        return True
    logger.info("no keyboard: episodes run their full time (Ctrl-C stops)")
    return None


def dataset_features_for(robot: Robot, use_videos: bool = True) -> dict[str, dict]:
    return {
        **hw_to_dataset_features(robot.action_features, "action", use_videos),
        **hw_to_dataset_features(robot.observation_features, "observation", use_videos),
    }


DEFAULT_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def check_resumable(root: str | Path, robot: Robot, use_videos: bool) -> None:
    """Refuse to append episodes from a robot whose features or type differ from the dataset's."""
    from robokit.data.meta import DatasetMeta

    meta = DatasetMeta.load(root)
    expected = dataset_features_for(robot, use_videos)
    have = {k: v for k, v in meta.features.items() if k not in DEFAULT_FEATURES}
    differ = sorted(
        k
        for k in set(expected) | set(have)
        if k not in expected
        or k not in have
        or list(have[k]["shape"]) != expected[k]["shape"]
        or have[k].get("names") != expected[k]["names"]
        or (have[k]["dtype"] in ("video", "image")) != (expected[k]["dtype"] in ("video", "image"))
    )
    if differ or meta.robot_type != robot.robot_type:
        raise ValueError(
            f"record --resume: the dataset at {root} was recorded by {meta.robot_type!r} with features "
            f"{sorted(have)}; {robot!r} ({robot.robot_type!r}) has other shapes or names for {differ or 'none'}"
            + ("" if meta.robot_type == robot.robot_type else " and another robot type")
        )


def record_loop(
    robot: Robot,
    teleop: Teleoperator | None,
    fps: float,
    duration_s: float,
    events: RecordEvents,
    dataset=None,
    task: str = "",
    timer: LoopTimer | None = None,
    policy=None,
) -> LoopTimer:
    """One phase: teleoperate (or run `policy`) for `duration_s`, adding a frame per tick when `dataset` is given.

    `policy` is a callable observation -> action (e.g. `robokit.control.policy_actor.PolicyActor`);
    it takes precedence over `teleop`.
    """
    timer = timer or LoopTimer(fps)
    start_ticks = timer.ticks
    features = dataset.features if dataset is not None else None
    while (timer.ticks - start_ticks) < round(duration_s * fps) and not events.exit_early:
        with timer.stage("read"):
            obs = robot.get_observation()
        if policy is not None:
            with timer.stage("policy"):
                action = policy(obs)
        elif teleop is None:  # nothing drives the robot: record it standing still
            action = {k: obs[k] for k in robot.action_features}
        else:
            with timer.stage("teleop"):
                action = teleop.get_action()
        with timer.stage("send"):
            sent = robot.send_action(action)
        if dataset is not None:
            with timer.stage("write"):
                frame = {
                    **build_dataset_frame(features, obs, "observation"),
                    **build_dataset_frame(features, sent, "action"),
                }
                dataset.add_frame({**frame, "task": task})
        timer.wait()
    events.exit_early = False
    return timer


def record(
    robot: Robot,
    teleop: Teleoperator | None,
    root: str | Path,
    task: str,
    fps: int = 30,
    num_episodes: int = 1,
    episode_time_s: float = 60,
    reset_time_s: float = 10,
    use_videos: bool = True,
    resume: bool = False,
    events: RecordEvents | None = None,
    keyboard: bool = True,
    video_codec: str = "av1",
    policy=None,
):
    """Record `num_episodes` episodes into the dataset at `root`; returns (dataset, timer)."""
    from robokit.data import RobotDataset

    if not task:
        raise ValueError("record: task is empty; describe the task in words, e.g. --task 'pick up the cube'")
    events = events or RecordEvents()
    if keyboard:
        start_keyboard_listener(events)
    if resume:
        check_resumable(root, robot, use_videos)
        dataset = RobotDataset.resume(root, video_codec=video_codec)
    else:
        dataset = RobotDataset.create(
            root,
            fps,
            dataset_features_for(robot, use_videos),
            robot_type=robot.robot_type,
            use_videos=use_videos,
            video_codec=video_codec,
        )
    timer = LoopTimer(fps)
    recorded = 0
    try:
        while recorded < num_episodes and not events.stop_recording:
            logger.info("recording episode %d (%s s)", dataset.meta.total_episodes, episode_time_s)
            if policy is not None and hasattr(policy, "reset"):
                policy.reset()
            record_loop(
                robot,
                teleop,
                fps,
                episode_time_s,
                events,
                dataset=dataset,
                task=task,
                timer=timer,
                policy=policy,
            )
            if events.rerecord_episode:
                events.rerecord_episode = False
                dataset.clear_episode_buffer()
                logger.info("re-recording the episode")
                continue
            if dataset.episode_buffer_size:
                dataset.save_episode(wait=False)  # encoding and commit run in the background
                recorded += 1
            if recorded < num_episodes and not events.stop_recording and reset_time_s > 0:
                logger.info("reset the scene (%s s)", reset_time_s)
                record_loop(robot, teleop, fps, reset_time_s, events, timer=timer)
    finally:
        dataset.finalize()
    logger.info("recorded %d episode(s) to %s; %s", recorded, root, timer.report())
    return dataset, timer


def episode_actions(root: str | Path, episode: int) -> tuple[list[dict[str, float]], int]:
    """The actions of one recorded episode (as robot action dicts) and the dataset's fps."""
    from robokit.data import RobotDataset
    from robokit.data.meta import read_parquet

    ds = RobotDataset(root, episodes=[episode])
    table = read_parquet(ds.meta.data_file(episode), columns=["episode_index", "frame_index", "action"])
    eps = table.column("episode_index").to_numpy()
    actions = np.asarray(table.column("action").to_pylist(), dtype=np.float64)[eps == episode]
    order = np.argsort(table.column("frame_index").to_numpy()[eps == episode])
    return [frame_to_action(ds.features, a) for a in actions[order]], ds.meta.fps


def replay(
    robot: Robot, root: str | Path, episode: int = 0, fps: int | None = None
) -> tuple[list[dict], LoopTimer]:
    """Send an episode's actions to `robot` at the recorded rate; returns what was sent and the timer."""
    actions, dataset_fps = episode_actions(root, episode)
    timer = LoopTimer(fps or dataset_fps)
    sent = []
    for action in actions:
        with timer.stage("send"):
            sent.append(robot.send_action(action))
        timer.wait()
    logger.info("replayed episode %d (%d frames); %s", episode, len(actions), timer.report())
    return sent, timer
