"""`robokit demos` (record scripted demonstrations) and `robokit eval` (evaluate a policy in sim)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from robokit.errors import UsageError

logger = logging.getLogger(__name__)


@dataclass
class DemosConfig:
    """Record a scripted expert's successful episodes in a simulated env into a RobotDataset."""

    env: str
    """Env name: pusht, aloha_transfer_cube, aloha_insertion, metaworld/<task>; or several into one dataset: a group
    (metaworld/mt10) or a list (metaworld/reach,push,drawer-open). May also be given first, unflagged."""
    episodes: int = 10
    """Number of (successful) episodes to save, per env."""
    out: str = "demos"
    """Dataset folder to create (must be empty or missing)."""
    seed: int = 0
    """Attempt k (of each env) is seeded with seed + k; the saved episodes' seeds go to meta/demos.json."""
    fast_render: bool = False
    """No shadows or multisampling in MuJoCo images (several times faster on a CPU)."""
    keep_failed: bool = False
    """Also save the expert's failed attempts."""
    max_attempts: int | None = None
    """Stop after this many attempts (default: 2 * episodes + 10)."""
    video_codec: str = "av1"
    """Codec of the dataset videos: av1, h264 or hevc."""
    image_size: tuple[int, int] | None = None
    """(height, width) of recorded images (default: the env's)."""
    cameras: tuple[str, ...] | None = None
    """Cameras to record (default: the env's); `--cameras` with no name records a state-only dataset."""
    full_episodes: bool | None = None
    """Go on recording after success until the time limit (default: yes for ALOHA, whose scripted
    hand-over finishes after the success signal; no for PushT and Meta-World)."""
    action_noise: float = 0.0
    """DART: add a drifting Gaussian offset with this standard deviation (action units: radians
    for ALOHA joints) to the executed action; the dataset keeps the expert's action."""
    noise_correlation: float = 0.9
    """Step-to-step correlation of that offset (AR(1) coefficient, in [0, 1))."""


@dataclass
class EvalConfig:
    """Evaluate a policy (a checkpoint folder or hub repo, `expert` or `random`) in a simulated env."""

    policy: str
    """A policy folder / hub repo id, a `robokit train` output folder (its last checkpoint), `expert` or `random`."""
    env: str
    """Env, group or list: pusht, aloha_transfer_cube, aloha_insertion, metaworld/<task>, metaworld/mt10,
    metaworld/reach,push,drawer-open..., libero_spatial/<i> (or a whole suite: libero_spatial, libero_object,
    libero_goal, libero_10)."""
    episodes: int = 10
    """Episodes per env."""
    batch_size: int = 1
    """Episodes run in parallel (worker processes when > 1)."""
    seed: int = 0
    """Episode i is seeded with seed + i: the same seed gives the same episodes."""
    out: str = "eval"
    """Folder for eval_info.json and videos/."""
    max_videos: int = 2
    """Number of episodes (per env) saved as mp4."""
    fast_render: bool = True
    """No shadows or multisampling in MuJoCo images."""
    device: str = "cpu"
    """Torch device of a learned policy."""
    image_size: tuple[int, int] | None = None
    """(height, width) of camera images (default: the env's)."""
    shuffle_instructions: bool = False
    """Give each env of a group another env's instruction (env i gets env i+1's): does language matter?"""
    demos: str | None = None
    """A dataset recorded by `robokit demos`: refuse evaluation seeds that reset one of its demonstrations."""


def demos_main(argv: list[str]) -> int:
    from robokit.cli import parse
    from robokit.envs.demos import record_demos
    from robokit.envs.experts import make_expert
    from robokit.envs.registry import expand_env_name

    if argv and not argv[0].startswith("-"):  # `robokit demos ENV ...` is `robokit demos --env ENV ...`
        argv = ["--env", *argv]
    cfg = parse(DemosConfig, argv, prog="robokit demos", description="usage: robokit demos ENV [--episodes N] [--out DIR] ...")
    try:  # names, packages and experts checked before any folder is made
        for name in expand_env_name(cfg.env):
            make_expert(name)
    except (ValueError, ImportError) as err:
        raise UsageError(str(err)) from err
    summary = record_demos(cfg.env, cfg.episodes, cfg.out, seed=cfg.seed, fast_render=cfg.fast_render,
                           keep_failed=cfg.keep_failed, max_attempts=cfg.max_attempts, video_codec=cfg.video_codec,
                           image_size=cfg.image_size, cameras=cfg.cameras, full_episodes=cfg.full_episodes,
                           action_noise=cfg.action_noise, noise_correlation=cfg.noise_correlation)
    print(summary.line())
    return 0 if summary.saved_episodes >= cfg.episodes else 1


def load_policy(spec: str, env_name: str, seed: int, device: str = "cpu"):
    """`expert`, `random`, or a policy folder / hub repo loaded with robokit.policies.Policy."""
    from robokit.envs.registry import expand_env_name, make_single_env

    if spec == "expert":
        names = expand_env_name(env_name)
        if len(names) > 1:
            return _PerEnvExperts(names)
        from robokit.envs.experts import make_expert

        return make_expert(env_name)
    if spec == "random":
        from robokit.envs.experts import RandomPolicy

        env = make_single_env(expand_env_name(env_name)[0], cameras=())
        space = env.action_space
        env.close()
        return RandomPolicy(space.low, space.high, seed=seed)
    from robokit.policies import Policy

    return Policy.from_pretrained(spec).to(device)  # every path form: see resolve_pretrained_dir


class _PerEnvExperts:
    """For a group eval with `--policy expert`: the expert of whichever env is being evaluated."""

    def __init__(self, names: list[str]):
        from robokit.envs.experts import make_expert

        self._experts = {name: make_expert(name) for name in names}

    def for_env(self, name: str):
        return self._experts[name]


def eval_main(argv: list[str]) -> int:
    from robokit.cli import parse
    from robokit.envs.evaluation import (
        check_unseen_seeds,
        evaluate,
        shuffled_instructions,
        success_table,
        success_table_markdown,
    )
    from robokit.envs.registry import expand_env_name

    cfg = parse(EvalConfig, argv, prog="robokit eval")
    try:  # the user's names and seeds, checked before anything loads or runs
        names = expand_env_name(cfg.env)
        if cfg.shuffle_instructions:
            shuffled_instructions(names)
        if cfg.demos is not None:
            check_unseen_seeds(cfg.env, cfg.seed, cfg.episodes, cfg.demos)
    except ValueError as err:
        raise UsageError(str(err)) from err
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    policy = load_policy(cfg.policy, cfg.env, cfg.seed, cfg.device)  # a wrong path, an offline hub id: one line
    kwargs = dict(n_episodes=cfg.episodes, batch_size=cfg.batch_size, seed=cfg.seed, videos_dir=out / "videos",
                  max_videos=cfg.max_videos, fast_render=cfg.fast_render, image_size=cfg.image_size,
                  shuffle_instructions=cfg.shuffle_instructions)
    info = evaluate(policy, cfg.env, **kwargs)
    info["policy"] = cfg.policy
    (out / "eval_info.json").write_text(json.dumps(info, indent=2))
    rows = success_table(info)
    table = success_table_markdown(rows)
    (out / "success_table.md").write_text(table + "\n")
    (out / "success_table.json").write_text(json.dumps(rows, indent=2))
    if len(names) > 1:
        print(table)
    agg = info["aggregated"]
    print(f"{cfg.env}: success {agg['pc_success']:.1f}% over {agg['n_episodes']} episodes, "
          f"avg sum reward {agg['avg_sum_reward']:.2f}, avg max reward {agg['avg_max_reward']:.2f}, "
          f"{agg['eval_ep_s']:.2f}s/episode -> {out / 'eval_info.json'}")
    return 0
