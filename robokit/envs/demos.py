"""Record scripted-expert demonstrations into a RobotDataset.

    record_demos("aloha_transfer_cube", episodes=50, out="data/transfer_cube", seed=0)
    record_demos("metaworld/mt10", episodes=50, out="data/mt10", image_size=(64, 64))   # one dataset, 10 tasks

A group or list of envs (`metaworld/mt10`, `metaworld/reach,push,drawer-open`) records `episodes`
episodes of each env, one env after another, into ONE dataset; every frame's `task` is its env's
instruction. The seeds each env's saved episodes were reset with go to `meta/demos.json`, so that
an evaluation can prove its seeds unseen (`robokit eval --demos DATASET`).

Attempt k is seeded with seed + k. Each attempt's frames (observation before the action, the
action, the task string) go to the dataset's episode buffer; a successful attempt is saved as
an episode, a failed one dropped (unless `keep_failed`). An attempt ends at success or at the
time limit; with `full_episodes` (the default for ALOHA) it goes on after success to the time
limit, so that the expert's whole motion is in the data. Recording stops after `episodes`
successes or `max_attempts` attempts, and the summary reports the expert's success rate.

With `action_noise` (DART, Laskey et al. 2017) the env executes the expert's action plus a slowly
varying Gaussian offset while the dataset records the expert's own action: the data then holds
states off the expert's path, each labelled with the action that returns to it, which is what a
policy needs when its own errors take it there.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


DEMOS_META = "meta/demos.json"
"""Per env: its instruction, the reset seeds of the saved episodes (in episode order), attempts and successes."""


@dataclass
class DemoSummary:
    env: str
    root: str
    saved_episodes: int
    frames: int
    attempts: int
    successes: int
    seconds: float
    per_env: dict[str, dict] = field(default_factory=dict)
    """For each env: task, saved_episodes, frames, attempts, successes, episode_seeds."""

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.attempts, 1)

    def line(self) -> str:
        text = (f"recorded {self.saved_episodes} episodes ({self.frames} frames) of {self.env} to {self.root} "
                f"in {self.seconds:.0f}s; expert success rate {self.successes}/{self.attempts} = {100 * self.success_rate:.1f}%")
        if len(self.per_env) > 1:
            width = max(len(name) for name in self.per_env)
            text += "".join(f"\n  {name:<{width}}  {e['saved_episodes']:4d} episodes {e['frames']:7d} frames  expert "
                            f"{e['successes']}/{e['attempts']} = {100 * e['successes'] / max(e['attempts'], 1):5.1f}%  "
                            f"{e['task']!r}" for name, e in self.per_env.items())
        return text


def demo_seeds(root: str | Path) -> dict[str, list[int]]:
    """{env name: reset seeds of its saved episodes} from a dataset recorded by `record_demos` ({} if none)."""
    path = Path(root) / DEMOS_META
    if not path.is_file():
        return {}
    return {name: [int(s) for s in env["episode_seeds"]] for name, env in json.loads(path.read_text())["envs"].items()}


def record_demos(env_name: str, episodes: int, out: str | Path, seed: int = 0, fast_render: bool = False,
                 keep_failed: bool = False, max_attempts: int | None = None, image_size: tuple[int, int] | None = None,
                 use_videos: bool = True, video_codec: str = "av1", progress: bool = True,
                 cameras: tuple[str, ...] | None = None, full_episodes: bool | None = None,
                 action_noise: float = 0.0, noise_correlation: float = 0.9) -> DemoSummary:
    """Run the env's scripted expert and save its (successful) episodes as a dataset at `out`.

    Args:
        env_name: a registered env name, or a group / comma-separated list of them (`episodes` of each).
        episodes: number of episodes to save (per env).
        out: dataset folder (must be empty or missing).
        seed: attempt k (of each env) is seeded with seed + k.
        fast_render: no shadows or multisampling in MuJoCo images.
        keep_failed: save failed attempts too.
        max_attempts: give up after this many attempts per env (default: 2 * episodes + 10).
        image_size: (height, width) of recorded images (default: the env's).
        use_videos: images as mp4 videos (else PNG files).
        video_codec: codec of the videos ("av1", "h264", "hevc").
        cameras: cameras to record (default: the env's); () for a state-only dataset.
        full_episodes: go on recording after success until the time limit (default: the env's
            `demos_to_time_limit`: ALOHA yes, PushT and Meta-World no).
        action_noise: standard deviation, in action units, of the offset added to the executed
            action (the recorded action stays the expert's); 0 records the expert as it is.
        noise_correlation: the offset is an AR(1) process, offset = c * offset + sqrt(1 - c^2) * N(0, sd),
            so it drifts over ~1 / (1 - c) steps instead of averaging out within the controller.
    """
    from robokit.data import RobotDataset
    from robokit.envs.registry import expand_env_name, make_single_env

    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"record_demos: episodes={episodes!r}, expected an int >= 1")
    if not action_noise >= 0.0:
        raise ValueError(f"record_demos: action_noise={action_noise!r}, expected >= 0")
    if not 0.0 <= noise_correlation < 1.0:
        raise ValueError(f"record_demos: noise_correlation={noise_correlation!r}, expected in [0, 1)")
    names = expand_env_name(env_name)
    # One plain env per name (not a vector env, which would reset itself at success), built before
    # the dataset so that a bad name or option leaves no folder behind.
    envs = [make_single_env(name, fast_render=fast_render, image_size=image_size, cameras=cameras) for name in names]
    try:
        for env in envs[1:]:
            if env.features != envs[0].features or env.fps != envs[0].fps:
                raise ValueError(f"record_demos: {env.name} has other features or fps than {envs[0].name}; "
                                 "one dataset holds envs of one kind (e.g. Meta-World tasks)")
        features = dict(envs[0].features)
        if not use_videos:
            features = {k: ({**v, "dtype": "image"} if v["dtype"] == "video" else v) for k, v in features.items()}
        robot_type = names[0].replace("/", "_") if len(names) == 1 else names[0].split("/")[0]
        dataset = RobotDataset.create(out, fps=envs[0].fps, features=features, robot_type=robot_type,
                                      use_videos=use_videos, video_codec=video_codec)
    except BaseException:
        for env in envs:
            env.close()
        raise
    start = time.perf_counter()
    bar = None
    if progress:
        from robokit.progress import progress as progress_bar

        bar = progress_bar(total=episodes * len(names), desc=f"demos {env_name}", unit="ep")
    per_env: dict[str, dict] = {}
    try:
        for env in envs:
            # Filled in as episodes are saved: an interrupted run still lists the seeds it used.
            per_env[env.name] = {"task": env.task, "saved_episodes": 0, "frames": 0, "attempts": 0, "successes": 0,
                                 "episode_seeds": []}
            _record_env(dataset, env, per_env[env.name], episodes, seed, keep_failed,
                        max_attempts or 2 * episodes + 10, full_episodes, action_noise, noise_correlation, bar)
    finally:
        if bar is not None:
            bar.close()
        dataset.finalize()
        for env in envs:
            env.close()
        (Path(out) / DEMOS_META).write_text(json.dumps({"seed": seed, "envs": per_env}, indent=1))
    totals = {k: sum(e[k] for e in per_env.values()) for k in ("saved_episodes", "frames", "attempts", "successes")}
    summary = DemoSummary(env_name, str(out), seconds=time.perf_counter() - start, per_env=per_env, **totals)
    for name, e in per_env.items():
        if e["saved_episodes"] < episodes:
            logger.warning("record_demos: %s: only %d of %d episodes after %d attempts", name, e["saved_episodes"],
                           episodes, e["attempts"])
    return summary


def _record_env(dataset, env, stats: dict, episodes: int, seed: int, keep_failed: bool, max_attempts: int,
                full_episodes: bool | None, action_noise: float, noise_correlation: float, bar) -> None:
    """Record one env's episodes into `dataset`, counting them in `stats` (its per-env summary)."""
    from robokit.envs.experts import make_expert
    from robokit.envs.registry import get_spec

    if full_episodes is None:
        full_episodes = get_spec(env.name).demos_to_time_limit
    expert = make_expert(env.name)
    keys = [k for k in env.features if k != "action"]
    while stats["saved_episodes"] < episodes and stats["attempts"] < max_attempts:
        attempt_seed = seed + stats["attempts"]
        obs, _ = env.reset(seed=attempt_seed)
        expert.reset()
        noise_rng = np.random.default_rng([attempt_seed, 7])  # reproducible per attempt
        stats["attempts"] += 1
        success, n_frames = False, 0
        offset = 0.0
        while True:
            action = expert.select_action({k: v[None] for k, v in obs.items()})[0]
            frame = {k: obs[k] for k in keys}
            frame["action"] = np.asarray(action, dtype=np.float32)
            frame["task"] = env.task
            dataset.add_frame(frame)
            n_frames += 1
            if action_noise > 0.0:
                innovation = noise_rng.normal(0.0, action_noise, size=np.shape(action))
                offset = noise_correlation * offset + np.sqrt(1.0 - noise_correlation**2) * innovation
                action = (np.asarray(action, dtype=np.float64) + offset).astype(np.float32)
            obs, _, terminated, truncated, _ = env.step(action)
            success |= bool(terminated)
            if truncated or (terminated and not full_episodes):
                break
        stats["successes"] += success
        if success or keep_failed:
            dataset.save_episode()
            stats["saved_episodes"] += 1
            stats["frames"] += n_frames
            stats["episode_seeds"].append(attempt_seed)
            if bar is not None:
                bar.update(1)
        else:
            dataset.clear_episode_buffer()
        if bar is not None:
            bar.set_postfix(env=env.name, success=f"{stats['successes']}/{stats['attempts']}")
