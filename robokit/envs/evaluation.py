"""Batched policy evaluation in simulation: `evaluate(policy, env_name, ...)` -> eval info dict.

    info = evaluate(make_expert("pusht"), "pusht", n_episodes=50, batch_size=8, seed=0,
                    videos_dir="out/videos", max_videos=4)
    info["aggregated"]["pc_success"]

Episode i (0-based) is reset with seed `seed + i`, whatever the batch size, so the same seed
gives the same episodes (and, for a deterministic policy, the same results). A batch runs until
every episode in it has terminated (success) or hit the time limit; steps an env takes after
its episode ended are ignored.

`policy` is anything with `reset()` and `select_action(obs)`: a scripted expert or
`RandomPolicy` (numpy in, numpy out; `reads_images = False` spares rendering their cameras), or a `robokit.policies.Policy` (torch tensors in, images
as float (B, C, H, W) in [0, 1]; converted here); or an object with `for_env(name)` that gives
the policy for each env. For a group or list (e.g. "metaworld/mt10") each env is evaluated and
the result holds `per_env` plus the overall aggregate; `success_table(info)` renders the
per-env and average success as markdown.

Every observation the policy gets holds `"task"`: a list (one per batch row) of the env's
instruction (`env.task`), which language-conditioned policies read and others ignore. With
`shuffle_instructions` each env of a group is given another env's instruction instead (a
derangement: env i gets env i+1's, the last the first's): the "does language matter" ablation.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _is_torch_policy(policy: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(policy, torch.nn.Module)


def _to_policy_input(obs: dict[str, np.ndarray], device) -> dict[str, Any]:
    import torch

    batch = {}
    for key, value in obs.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if key.startswith("observation.images."):
            tensor = tensor.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # (B, H, W, C) uint8 -> (B, C, H, W)
        else:
            tensor = tensor.to(torch.float32)
        batch[key] = tensor.to(device)
    return batch


def _select_actions(policy, obs: dict[str, np.ndarray], torch_policy: bool, instruction: str) -> np.ndarray:
    n = next(iter(obs.values())).shape[0]
    if not torch_policy:
        return np.asarray(policy.select_action({**obs, "task": [instruction] * n}), dtype=np.float32)
    import torch

    device = next(iter(policy.parameters()), torch.empty(0)).device
    batch = _to_policy_input(obs, device)
    batch["task"] = [instruction] * n
    with torch.inference_mode():
        action = policy.select_action(batch)
    return action.to("cpu", torch.float32).numpy()


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """Encode uint8 (H, W, 3) frames into an H.264 mp4 with PyAV (odd sizes padded to even)."""
    from robokit.data.video_encode import StreamingVideoEncoder

    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = StreamingVideoEncoder(path, fps=int(fps), codec="h264", g=None, crf=23)
    try:
        for frame in frames:
            h, w = frame.shape[:2]
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            encoder.add_frame(frame)
        encoder.close()
    except BaseException:
        encoder.abort()
        raise
    return path


def _aggregate(episodes: list[dict], elapsed: float) -> dict[str, float]:
    n = max(len(episodes), 1)
    return {
        "pc_success": 100.0 * sum(e["success"] for e in episodes) / n,
        "avg_sum_reward": float(np.mean([e["sum_reward"] for e in episodes])) if episodes else 0.0,
        "avg_max_reward": float(np.mean([e["max_reward"] for e in episodes])) if episodes else 0.0,
        "n_episodes": len(episodes),
        "eval_s": elapsed,
        "eval_ep_s": elapsed / n,
    }


def _policy_cameras(policy) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """The cameras a learned policy reads (`observation.images.<camera>`) and the (height, width) it was trained on.

    Rendering only those (none for a state-only policy) at the training size is both what the
    policy expects and much cheaper than the env's default cameras.
    """
    prefix = "observation.images."
    names = [k for k in policy.image_features if k.startswith(prefix)]
    size = None
    if names:
        shape = policy.input_features[names[0]].shape  # (C, H, W)
        size = (int(shape[1]), int(shape[2]))
    return tuple(k[len(prefix):] for k in names), size


def _video_frames(env, obs: dict[str, np.ndarray], camera_key: str | None, envs: list[int]) -> dict[int, np.ndarray]:
    """This step's video frame of each env in `envs`: its observed camera image, else what env.render() draws."""
    if not envs:
        return {}
    if camera_key is not None:
        return {i: obs[camera_key][i].copy() for i in envs}
    images = env.call("render")  # every env of the batch; only batches with a filmed episode get here
    return {i: np.asarray(images[i]) for i in envs}


def _evaluate_one(policy, env_name: str, n_episodes: int, batch_size: int, seed: int, videos_dir: Path | None,
                  max_videos: int, fast_render: bool, progress: bool, image_size=None,
                  max_episode_steps: int | None = None, instruction: str | None = None) -> dict[str, Any]:
    from robokit.envs.registry import make_env

    torch_policy = _is_torch_policy(policy)
    batch_size = min(batch_size, n_episodes)
    cameras = None
    if torch_policy and hasattr(policy, "image_features"):
        cameras, trained_size = _policy_cameras(policy)
        image_size = image_size or trained_size
    elif getattr(policy, "reads_images", True) is False:  # scripted experts, RandomPolicy: no camera to render
        cameras = ()
    env = make_env(env_name, n_envs=batch_size, fast_render=fast_render, image_size=image_size,
                   max_episode_steps=max_episode_steps, cameras=cameras)
    # Video frames: the first observed camera; for a state-only policy, env.render() of the filmed
    # episodes' batches only (its observations hold no image, and rendering every episode is costly).
    camera_key = f"observation.images.{env.cameras[0]}" if env.cameras else None
    instruction = env.task if instruction is None else instruction
    episodes: list[dict] = []
    video_paths: list[str] = []
    start = time.perf_counter()
    n_batches = -(-n_episodes // batch_size)
    bar = None
    if progress:
        from robokit.progress import progress as progress_bar

        bar = progress_bar(total=n_episodes, desc=f"eval {env_name}", unit="ep", leave=False)
    try:
        for b in range(n_batches):
            first = b * batch_size
            n_live = min(batch_size, n_episodes - first)
            seeds = [seed + first + i for i in range(batch_size)]
            obs, _ = env.reset(seed=seeds)
            policy.reset()
            done = np.zeros(batch_size, dtype=bool)
            done[n_live:] = True  # padding envs of the last batch: run, never counted
            sum_reward = np.zeros(batch_size)
            max_reward = np.full(batch_size, -np.inf)
            success = np.zeros(batch_size, dtype=bool)
            steps = np.zeros(batch_size, dtype=int)
            record = [i for i in range(n_live) if first + i < max_videos]
            frames = {i: [frame] for i, frame in _video_frames(env, obs, camera_key, record).items()}
            while not done.all():
                action = _select_actions(policy, obs, torch_policy, instruction)
                obs, reward, terminated, truncated, info = env.step(action)
                live = ~done
                sum_reward[live] += reward[live]
                max_reward[live] = np.maximum(max_reward[live], reward[live])
                steps[live] += 1
                step_success = np.asarray(info.get("is_success", terminated), dtype=bool)
                if "_is_success" in info:
                    step_success = step_success & np.asarray(info["_is_success"], dtype=bool)
                success[live] |= step_success[live]
                for i, frame in _video_frames(env, obs, camera_key, [i for i in record if live[i]]).items():
                    frames[i].append(frame)
                done |= terminated | truncated
            for i in range(n_live):
                episodes.append({
                    "episode_index": first + i, "seed": seeds[i], "sum_reward": float(sum_reward[i]),
                    "max_reward": float(max_reward[i]), "success": bool(success[i]), "steps": int(steps[i]),
                })
                if i in frames and videos_dir is not None:
                    name = env_name.replace("/", "_")
                    path = write_video(Path(videos_dir) / f"{name}_episode_{first + i}.mp4", frames[i], env.fps)
                    video_paths.append(str(path))
            if bar is not None:
                bar.update(n_live)
    finally:
        if bar is not None:
            bar.close()
        env.close()
    elapsed = time.perf_counter() - start
    return {"env": env_name, "task": env.task, "instruction": instruction, "per_episode": episodes,
            "aggregated": _aggregate(episodes, elapsed), "video_paths": video_paths}


def shuffled_instructions(names: list[str]) -> dict[str, str]:
    """{env name: the instruction of the next env in `names` (the last gets the first's)}: every env another's."""
    from robokit.envs.registry import get_spec

    tasks = [get_spec(name).task for name in names]
    if len(set(tasks)) < 2:
        raise ValueError(f"shuffle_instructions: envs {names} have {len(set(tasks))} distinct instruction(s); "
                         "expected a group or list of at least 2 tasks")
    given = {name: tasks[(i + 1) % len(names)] for i, name in enumerate(names)}
    same = [name for name, task in zip(names, tasks) if given[name] == task]
    if same:  # two envs with one instruction side by side in the list
        raise ValueError(f"shuffle_instructions: {same} would keep their own instruction; expected distinct tasks")
    return given


def check_unseen_seeds(env_name: str, seed: int, n_episodes: int, demos_root: str | Path) -> None:
    """Raise ValueError if an evaluation seed of an env was a demonstration seed in the dataset at `demos_root`."""
    from robokit.envs.demos import DEMOS_META, demo_seeds
    from robokit.envs.registry import expand_env_name

    used = demo_seeds(demos_root)
    if not used:
        raise ValueError(f"demos dataset {str(demos_root)!r} has no {DEMOS_META}; expected a dataset recorded by robokit demos")
    seeds = set(range(seed, seed + n_episodes))
    for name in expand_env_name(env_name):
        overlap = sorted(seeds & set(used.get(name, [])))
        if overlap:
            which = f"seed {overlap[0]}" if len(overlap) == 1 else f"seeds {overlap[0]}..{overlap[-1]}"
            raise ValueError(f"seed={seed}: evaluation {which} of {name} reset the same layouts "
                             f"as demonstrations in {demos_root} (its demo seeds: {min(used[name])}..{max(used[name])}); "
                             f"expected unseen seeds, e.g. --seed {max(max(v) for v in used.values()) + 1000}")


def success_table(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows {env, task, instruction, episodes, successes, pc_success} per env, and a last "average" row."""
    results = info["per_env"] if "per_env" in info else {info["env"]: info}
    rows = []
    for name, result in results.items():
        episodes = result["per_episode"]
        rows.append({"env": name, "task": result.get("task"), "instruction": result.get("instruction"),
                     "episodes": len(episodes), "successes": sum(e["success"] for e in episodes),
                     "pc_success": result["aggregated"]["pc_success"]})
    # The average of the per-env rates (each env counts once, as the Meta-World papers report it).
    rows.append({"env": "average", "task": None, "instruction": None, "episodes": sum(r["episodes"] for r in rows),
                 "successes": sum(r["successes"] for r in rows),
                 "pc_success": float(np.mean([r["pc_success"] for r in rows]))})
    return rows


def success_table_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows of `success_table` as a markdown table (instruction column when it differs from the task)."""
    shuffled = any(r["instruction"] != r["task"] for r in rows[:-1])
    head = "| env | task |" + (" instruction given |" if shuffled else "") + " success | episodes |"
    lines = [head, "|---|---|" + ("---|" if shuffled else "") + "---:|---:|"]
    for r in rows:
        task = r["task"] or ""
        given = f" {r['instruction'] or ''} |" if shuffled else ""
        name = f"**{r['env']}**" if r["env"] == "average" else r["env"]
        lines.append(f"| {name} | {task} |{given} {r['pc_success']:.1f}% | {r['successes']}/{r['episodes']} |")
    return "\n".join(lines)


def evaluate(policy, env_name: str, n_episodes: int = 10, batch_size: int = 1, seed: int = 0,
             videos_dir: str | Path | None = None, max_videos: int = 0, fast_render: bool = True,
             progress: bool = True, image_size: tuple[int, int] | None = None,
             max_episode_steps: int | None = None, shuffle_instructions: bool = False) -> dict[str, Any]:
    """Roll `policy` out for `n_episodes` per env of `env_name`; returns per-episode and aggregate results.

    Args:
        policy: `reset()` + `select_action(obs)` (an expert, RandomPolicy or robokit Policy), or an
            object whose `for_env(name)` returns the policy of each env.
        env_name: a registered env, group or comma-separated list of envs.
        n_episodes: episodes per env.
        batch_size: episodes run in parallel (worker processes when > 1).
        seed: episode i is seeded with seed + i.
        videos_dir: where the mp4s of the first `max_videos` episodes go.
        max_videos: number of episodes (per env) to save as videos.
        fast_render: no shadows or multisampling in MuJoCo images.
        progress: show a progress bar.
        image_size: (height, width) of camera images (default: the env's; a policy expects its training size).
        max_episode_steps: time limit per episode (default: the env's).
        shuffle_instructions: give each env of a group another env's instruction (see the module doc).
    """
    from robokit.envs.registry import expand_env_name

    if not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"evaluate: n_episodes={n_episodes!r}, expected an int >= 1")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate: batch_size={batch_size!r}, expected an int >= 1")
    if max_videos < 0:
        raise ValueError(f"evaluate: max_videos={max_videos!r}, expected >= 0")
    names = expand_env_name(env_name)
    instructions = shuffled_instructions(names) if shuffle_instructions else {}
    policies = {name: policy.for_env(name) if hasattr(policy, "for_env") else policy for name in names}
    torch_policies = [p for p in {id(p): p for p in policies.values()}.values() if _is_torch_policy(p)]
    rng = contextlib.nullcontext()
    if torch_policies:
        import torch

        # The policy's draws are seeded here; the caller's (e.g. a training loop's) RNG stream is left as it was.
        rng = torch.random.fork_rng()
        for p in torch_policies:
            p.eval()
    with rng:
        results = {}
        for name in names:
            if torch_policies:
                torch.manual_seed(seed)
            results[name] = _evaluate_one(policies[name], name, n_episodes, batch_size, seed,
                                          None if videos_dir is None else Path(videos_dir), max_videos, fast_render,
                                          progress, image_size, max_episode_steps, instructions.get(name))
    config = {"n_episodes": n_episodes, "batch_size": batch_size, "seed": seed,
              "shuffle_instructions": shuffle_instructions}
    if len(names) == 1:
        return {**results[names[0]], **config}
    episodes = [{**e, "env": name} for name, r in results.items() for e in r["per_episode"]]
    elapsed = sum(r["aggregated"]["eval_s"] for r in results.values())
    return {"env": env_name, "per_env": results, "per_episode": episodes, "aggregated": _aggregate(episodes, elapsed),
            "video_paths": [p for r in results.values() for p in r["video_paths"]], **config}
