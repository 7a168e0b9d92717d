"""Async vs synchronous execution in simulation, with an artificial inference delay.

SimRobot drives ALOHA transfer-cube; the policy is the scripted expert wrapped as a chunking
policy (`ExpertChunkPolicy`: a chunk is the expert's next `chunk` actions from the observation's
timestep) that takes at least `--delay` seconds per chunk, like a large model on a remote GPU. It is
served by a real `PolicyServer` over gRPC on loopback; the client runs at `--fps`.

    sync:   wait for each chunk, execute all of it, ask again  -> the arm stops while it waits
    async:  ask when queue/chunk <= threshold, keep executing  -> the queue never runs dry

Reported per mode and delay: success, task completion time (wall clock until the env reports
success), empty ticks after start-up, chunks, round trip. Both modes execute the same expert
actions, so success is equal by construction and the difference in time is the idling.

    python benchmarks/bench_serving_async.py [--episodes 2] [--delays 0.1 0.3] [--fps 25]

The expert plans from the cube's pose, which SimRobot does not expose as a robot observation
(it is privileged simulator state): the IO adapter here adds `observation.environment_state`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from types import SimpleNamespace

import numpy as np

ENV = "aloha_transfer_cube"


class ExpertChunkPolicy:
    """The scripted expert as a policy that predicts `chunk` actions per call, no faster than `delay_s`."""

    accepts_timestep = True

    def __init__(self, features: dict, chunk: int, delay_s: float):
        import torch

        from robokit.envs import make_expert
        from robokit.policies.config import policy_features

        self.torch = torch
        self.expert = make_expert(ENV)
        pf = policy_features({k: v for k, v in features.items() if not k.startswith("observation.images.")})
        self.input_features = {k: v for k, v in pf.items() if k != "action"}
        self.output_features = {"action": pf["action"]}
        self.config = SimpleNamespace(type="aloha_expert", chunk_size=chunk, n_obs_steps=1)
        self.device = torch.device("cpu")
        self.chunk, self.delay_s = chunk, delay_s
        self.reset()

    def reset(self) -> None:
        self.expert.reset()
        self.actions: list[np.ndarray] = []  # the expert's action for each timestep generated so far

    def predict_action_chunk(self, obs, timestep: int):
        t0 = time.perf_counter()
        row = {k: v[0].cpu().numpy() for k, v in obs.items() if k in self.input_features}
        while len(self.actions) < timestep + self.chunk:  # the expert steps forward from what it has generated
            self.actions.append(np.asarray(self.expert.select_action(row), dtype=np.float32))
        chunk = np.stack(self.actions[timestep: timestep + self.chunk])
        time.sleep(max(0.0, self.delay_s - (time.perf_counter() - t0)))
        return self.torch.from_numpy(chunk).unsqueeze(0)  # (1, chunk, 14)


class SimIO:
    """RobotIO over a SimRobot, plus the env state the expert plans from; done at success or episode end."""

    def __init__(self, robot):
        from robokit.serving.client import RobotIO

        self.robot = robot
        self.inner = RobotIO(robot)
        env_state = robot.spec.features()["observation.environment_state"]
        self.features = {**self.inner.features, "observation.environment_state": env_state}
        self.success_at: float | None = None

    def observe(self):
        frame = self.inner.observe()
        frame["observation.environment_state"] = np.asarray(self.robot._obs["observation.environment_state"], np.float32)
        return frame

    def act(self, action):
        self.inner.act(action)
        if self.robot.last_info.get("is_success") and self.success_at is None:
            self.success_at = time.perf_counter()

    @property
    def done(self) -> bool:
        info = self.robot.last_info
        return bool(info.get("is_success") or info.get("terminated") or info.get("truncated"))


def episode(server_address: str, mode: str, seed: int, fps: float, threshold: float, image_size) -> dict:
    from robokit.envs.sim_robot import SimRobot, SimRobotConfig
    from robokit.serving.client import ClientConfig, RobotClient
    from robokit.serving.transport import RemoteBackend

    robot = SimRobot(SimRobotConfig(env=ENV, seed=seed, image_size=image_size))
    robot.connect()
    io = SimIO(robot)
    backend = RemoteBackend(server_address, f"expert/{ENV}", io.features)
    try:
        client = RobotClient(io, backend, ClientConfig(fps=fps, mode=mode, chunk_size_threshold=threshold))
        t0 = time.perf_counter()
        stats = client.run(max_steps=robot.spec.max_episode_steps)
        s = stats.summary()
    finally:
        backend.close()
        robot.disconnect()
    return {"mode": mode, "seed": seed, "success": io.success_at is not None,
            "completion_s": (io.success_at - t0) if io.success_at else None, "elapsed_s": s["elapsed_s"],
            "actions": s["actions_executed"], "empty_ticks_after_start": s["empty_ticks_after_start"],
            "empty_ticks": s["empty_ticks"], "chunks": s["chunks_received"], "achieved_fps": s["achieved_fps"],
            "round_trip_p50_ms": s["round_trip_ms"].get("p50"), "late_ticks": s["late_ticks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.1, 0.3], help="seconds per chunk (at least)")
    parser.add_argument("--fps", type=float, default=25.0, help="control rate (ALOHA records at 50; this CPU steps it at ~25)")
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--image-size", type=int, nargs=2, default=[96, 128], help="camera frames sent with each observation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from robokit.envs.sim_robot import SimRobot, SimRobotConfig
    from robokit.serving.server import PolicyServer, ServeConfig

    probe = SimRobot(SimRobotConfig(env=ENV, image_size=tuple(args.image_size)))
    rows = []
    for delay in args.delays:
        features = _features(probe)
        loader = lambda path, revision, device, d=delay, f=features: ExpertChunkPolicy(f, args.chunk, d)  # noqa: E731
        with PolicyServer(ServeConfig(port=0), loader=loader) as server:
            for seed in range(args.episodes):
                for mode in ("sync", "async"):
                    row = episode(f"127.0.0.1:{server.port}", mode, seed, args.fps, args.threshold, tuple(args.image_size))
                    row["delay_s"] = delay
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\nALOHA transfer-cube, SimRobot at {args.fps:g} fps, expert chunks of {args.chunk}, threshold "
          f"{args.threshold}, gRPC on loopback; mean over {args.episodes} episodes:")
    for delay in args.delays:
        by_mode = {m: [r for r in rows if r["delay_s"] == delay and r["mode"] == m] for m in ("sync", "async")}
        line = []
        for mode, rs in by_mode.items():
            done = [r["completion_s"] for r in rs if r["success"]]
            empty = np.mean([r["empty_ticks_after_start"] for r in rs])
            line.append(f"{mode}: success {len(done)}/{len(rs)}, completion {np.mean(done) if done else float('nan'):.2f} s, "
                        f"empty ticks after start-up {empty:.0f}")
        sync_t = [r["completion_s"] for r in by_mode["sync"] if r["success"]]
        async_t = [r["completion_s"] for r in by_mode["async"] if r["success"]]
        gain = (1 - np.mean(async_t) / np.mean(sync_t)) * 100 if sync_t and async_t else float("nan")
        print(f"  delay {delay * 1e3:.0f} ms: " + "; ".join(line) + f"; async {gain:.0f}% faster")


def _features(robot) -> dict:
    from robokit.control.dataset_features import hw_to_dataset_features

    return {**hw_to_dataset_features(robot.observation_features, "observation"),
            **hw_to_dataset_features(robot.action_features, "action"),
            "observation.environment_state": robot.spec.features()["observation.environment_state"]}


if __name__ == "__main__":
    main()
