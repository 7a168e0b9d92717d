"""Record scripted-expert demonstrations into a RobotDataset.

    record_demos("aloha_transfer_cube", episodes=50, out="data/transfer_cube", seed=0)

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

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class DemoSummary:
    env: str
    root: str
    saved_episodes: int
    frames: int
    attempts: int
    successes: int
    seconds: float

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.attempts, 1)

    def line(self) -> str:
        return (f"recorded {self.saved_episodes} episodes ({self.frames} frames) of {self.env} to {self.root} "
                f"in {self.seconds:.0f}s; expert success rate {self.successes}/{self.attempts} = {100 * self.success_rate:.1f}%")


def record_demos(env_name: str, episodes: int, out: str | Path, seed: int = 0, fast_render: bool = False,
                 keep_failed: bool = False, max_attempts: int | None = None, image_size: tuple[int, int] | None = None,
                 use_videos: bool = True, video_codec: str = "av1", progress: bool = True,
                 cameras: tuple[str, ...] | None = None, full_episodes: bool | None = None,
                 action_noise: float = 0.0, noise_correlation: float = 0.9) -> DemoSummary:
    """Run the env's scripted expert and save its (successful) episodes as a dataset at `out`.

    Args:
        env_name: a registered env name (not a group).
        episodes: number of episodes to save.
        out: dataset folder (must be empty or missing).
        seed: attempt k is seeded with seed + k.
        fast_render: no shadows or multisampling in MuJoCo images.
        keep_failed: save failed attempts too.
        max_attempts: give up after this many attempts (default: 2 * episodes + 10).
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
    from robokit.envs.experts import make_expert
    from robokit.envs.registry import get_spec, make_single_env

    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"record_demos: episodes={episodes!r}, expected an int >= 1")
    if not action_noise >= 0.0:
        raise ValueError(f"record_demos: action_noise={action_noise!r}, expected >= 0")
    if not 0.0 <= noise_correlation < 1.0:
        raise ValueError(f"record_demos: noise_correlation={noise_correlation!r}, expected in [0, 1)")
    max_attempts = max_attempts or 2 * episodes + 10
    if full_episodes is None:
        full_episodes = get_spec(env_name).demos_to_time_limit
    # One plain env (not a vector env, which would reset itself at success) behind the batch-of-one
    # interface of the experts.
    env = make_single_env(env_name, fast_render=fast_render, image_size=image_size, cameras=cameras)
    expert = make_expert(env_name)
    features = dict(env.features)
    if not use_videos:
        features = {k: ({**v, "dtype": "image"} if v["dtype"] == "video" else v) for k, v in features.items()}
    dataset = RobotDataset.create(out, fps=env.fps, features=features, robot_type=env_name.replace("/", "_"),
                                  use_videos=use_videos, video_codec=video_codec)
    keys = [k for k in features if k != "action"]
    saved = frames = attempts = successes = 0
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes, desc=f"demos {env_name}", unit="ep")
    try:
        while saved < episodes and attempts < max_attempts:
            obs, _ = env.reset(seed=seed + attempts)
            expert.reset()
            noise_rng = np.random.default_rng([seed + attempts, 7])  # reproducible per attempt
            attempts += 1
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
                obs, _, terminated, truncated, info = env.step(action)
                success |= bool(terminated)
                if truncated or (terminated and not full_episodes):
                    break
            successes += success
            if success or keep_failed:
                dataset.save_episode()
                saved += 1
                frames += n_frames
                if bar is not None:
                    bar.update(1)
            else:
                dataset.clear_episode_buffer()
            if bar is not None:
                bar.set_postfix(success=f"{successes}/{attempts}")
    finally:
        if bar is not None:
            bar.close()
        dataset.finalize()
        env.close()
    summary = DemoSummary(env_name, str(out), saved, frames, attempts, successes, time.perf_counter() - start)
    if saved < episodes:
        logger.warning("record_demos: only %d of %d episodes after %d attempts", saved, episodes, attempts)
    return summary
