"""Env steps/s per env with and without rendering (default and fast), and eval rollouts/s at batch 1 and 8.

    .venv/bin/python benchmarks/bench_envs.py                 # all envs
    .venv/bin/python benchmarks/bench_envs.py --envs pusht aloha_transfer_cube --steps 50

Steps use random actions in one env (no worker process); "render" rows render the env's default
cameras at the default size. The eval rows run `evaluate` with a random policy and a short time
limit, and report whole rollouts per second including worker start-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def steps_per_second(name: str, steps: int, **kwargs) -> float:
    from robokit.envs import make_env

    env = make_env(name, seed=0, **kwargs)
    env.reset()
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    env.step(rng.uniform(low, high).astype(np.float32))  # first render creates the GL context
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(low, high).astype(np.float32))
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def rollouts_per_second(name: str, batch_size: int, episodes: int, episode_steps: int) -> float:
    from robokit.envs import evaluate, make_single_env
    from robokit.envs.experts import RandomPolicy

    probe = make_single_env(name, cameras=())
    policy = RandomPolicy(probe.action_space.low, probe.action_space.high, seed=0)
    probe.close()
    info = evaluate(policy, name, n_episodes=episodes, batch_size=batch_size, seed=0, fast_render=True,
                    progress=False, max_episode_steps=episode_steps)
    return episodes / info["aggregated"]["eval_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["pusht", "aloha_transfer_cube", "aloha_insertion", "metaworld/push"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-episodes", type=int, default=8)
    parser.add_argument("--eval-steps", type=int, default=50, help="time limit of each eval rollout")
    args = parser.parse_args()
    print(f"{'env':24s} {'no render':>10s} {'render':>10s} {'fast render':>12s}   steps/s")
    for name in args.envs:
        plain = steps_per_second(name, args.steps, cameras=())
        default = steps_per_second(name, max(args.steps // 4, 10))
        fast = steps_per_second(name, max(args.steps // 2, 10), fast_render=True)
        print(f"{name:24s} {plain:10.1f} {default:10.1f} {fast:12.1f}", flush=True)
    print(f"\n{'env':24s} {'batch 1':>10s} {'batch 8':>10s}   eval rollouts/s ({args.eval_steps}-step rollouts, fast render)")
    for name in args.envs:
        one = rollouts_per_second(name, 1, args.eval_episodes, args.eval_steps)
        eight = rollouts_per_second(name, 8, args.eval_episodes, args.eval_steps)
        print(f"{name:24s} {one:10.2f} {eight:10.2f}", flush=True)


if __name__ == "__main__":
    main()
