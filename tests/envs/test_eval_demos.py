"""`evaluate` / `robokit eval` reproducibility and outputs; `robokit demos` writes a valid dataset; SimRobot."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from robokit.cli import main as cli
from robokit.envs import SimRobot, SimRobotConfig, evaluate
from robokit.envs.experts import RandomPolicy

from .conftest import SMALL


def _random(seed):
    return RandomPolicy(np.zeros(2), np.full(2, 512.0), seed=seed)


def test_evaluate_is_reproducible_for_a_seed(need_pusht):
    kwargs = dict(n_episodes=3, batch_size=2, progress=False, max_episode_steps=40)
    a = evaluate(_random(0), "pusht", seed=7, **kwargs)
    b = evaluate(_random(0), "pusht", seed=7, **kwargs)
    c = evaluate(_random(0), "pusht", seed=8, **kwargs)
    assert a["per_episode"] == b["per_episode"]
    assert [e["seed"] for e in a["per_episode"]] == [7, 8, 9]
    assert a["per_episode"] != c["per_episode"]
    assert all(e["steps"] == 40 for e in a["per_episode"])  # random pushing does not succeed: time limit
    agg = a["aggregated"]
    assert agg["n_episodes"] == 3 and agg["pc_success"] == 0.0
    assert agg["avg_max_reward"] == pytest.approx(np.mean([e["max_reward"] for e in a["per_episode"]]))


def test_eval_command_writes_info_and_videos(need_aloha, tmp_path):
    out = tmp_path / "eval"
    code = cli(["eval", "--policy", "expert", "--env", "aloha_transfer_cube", "--episodes", "2", "--batch-size", "2",
                "--seed", "0", "--out", str(out), "--max-videos", "1", "--image-size", str(SMALL[0]), str(SMALL[1])])
    assert code == 0
    info = json.loads((out / "eval_info.json").read_text())
    assert info["aggregated"]["pc_success"] == 100.0
    assert [e["seed"] for e in info["per_episode"]] == [0, 1]
    assert all(e["max_reward"] == 4.0 and e["success"] for e in info["per_episode"])
    assert {"avg_sum_reward", "avg_max_reward", "eval_s", "eval_ep_s"} <= set(info["aggregated"])
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == 1
    with av.open(str(videos[0])) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.height, stream.width) == SMALL
    assert frames == info["per_episode"][0]["steps"] + 1  # the reset frame + one per step


def test_demos_command_writes_a_dataset_that_checks(need_aloha, tmp_path):
    from robokit.data import RobotDataset

    root = tmp_path / "demos"
    # The form: the env name first, unflagged.
    code = cli(["demos", "aloha_transfer_cube", "--episodes", "1", "--out", str(root), "--seed", "0",
                "--fast-render", "--image-size", str(SMALL[0]), str(SMALL[1])])
    assert code == 0
    ds = RobotDataset(root)
    assert ds.num_episodes == 1 and ds.fps == 50
    assert ds.features["action"]["shape"] == [14]
    item = ds[0]
    assert tuple(item["observation.images.top"].shape) == (3, *SMALL)
    assert item["task"].startswith("Pick up the red cube")
    assert cli(["dataset", "check", str(root)]) == 0


def test_sim_robot_round_trip(need_pusht):
    robot = SimRobot(SimRobotConfig(env="pusht", seed=0))
    assert set(robot.action_features) == {"agent.x.pos", "agent.y.pos"}
    assert robot.observation_features["top"] == (96, 96, 3)
    from robokit.robots import DeviceNotConnectedError

    with pytest.raises(DeviceNotConnectedError):
        robot.get_observation()
    with robot:
        start = robot.get_observation()
        sent = robot.send_action({"agent.x.pos": 300.0, "agent.y.pos": 9999.0})
        assert sent == {"agent.x.pos": 300.0, "agent.y.pos": 512.0}  # clamped to the workspace
        for _ in range(10):
            robot.send_action({"agent.x.pos": 300.0, "agent.y.pos": 200.0})
        obs = robot.get_observation()
        assert abs(obs["agent.x.pos"] - 300.0) < 5 and abs(obs["agent.y.pos"] - 200.0) < 5
        assert (obs["agent.x.pos"], obs["agent.y.pos"]) != (start["agent.x.pos"], start["agent.y.pos"])
        assert obs["top"].shape == (96, 96, 3) and obs["top"].dtype == np.uint8
        with pytest.raises(KeyError, match="agent.y.pos"):
            robot.send_action({"agent.x.pos": 1.0})
    assert not robot.is_connected


def test_state_only_policy_video_renders_only_the_filmed_episode(need_pusht, tmp_path):
    """A state-only policy asked for a video: its observations hold no image; the video comes from env.render()."""
    import torch

    from robokit.envs.registry import get_spec
    from robokit.policies import Policy, make_config

    features = get_spec("pusht").features(cameras=())
    stats = {k: {"mean": np.zeros(v["shape"], np.float32), "std": np.ones(v["shape"], np.float32),
                 "min": np.zeros(v["shape"], np.float32), "max": np.full(v["shape"], 512.0, np.float32)}
             for k, v in features.items() if v["dtype"] == "float32"}
    torch.manual_seed(0)
    policy = Policy.build(make_config("act", dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1,
                                      use_vae=False, chunk_size=5, n_action_steps=5), features, stats)
    seen = []
    select = policy.select_action
    policy.select_action = lambda obs, **kw: (seen.append(sorted(obs)), select(obs, **kw))[1]
    info = evaluate(policy, "pusht", n_episodes=2, seed=0, videos_dir=tmp_path, max_videos=1, progress=False,
                    max_episode_steps=6)
    assert seen and all(not any(k.startswith("observation.images") for k in keys) for keys in seen)
    assert [p.rsplit("/", 1)[-1] for p in info["video_paths"]] == ["pusht_episode_0.mp4"]
    with av.open(info["video_paths"][0]) as container:
        assert sum(1 for _ in container.decode(video=0)) == 7  # the reset frame + 6 steps


def test_aloha_demos_run_to_the_time_limit_unless_told(need_aloha, tmp_path):
    """The hand-over finishes after the success signal: full episodes hold the left gripper closing."""
    from robokit.data import RobotDataset
    from robokit.envs.demos import record_demos

    full = record_demos("aloha_transfer_cube", 1, tmp_path / "full", cameras=(), progress=False)
    short = record_demos("aloha_transfer_cube", 1, tmp_path / "short", cameras=(), progress=False, full_episodes=False)
    assert full.successes == short.successes == 1
    assert full.frames == 400 and short.frames < 400  # success came before the time limit
    actions = RobotDataset(tmp_path / "full")._columns["action"]
    left_grip = actions[:, 6]
    assert left_grip[: short.frames].min() > 0.5  # open until the success signal...
    assert left_grip[short.frames :].min() < 0.1  # ...then it closes on the cube


def test_dart_noise_moves_the_states_but_records_the_experts_actions(need_aloha, tmp_path):
    """With action_noise the env is pushed off the expert's path; the labels stay the expert's."""
    from robokit.data import RobotDataset
    from robokit.envs.demos import record_demos

    clean = record_demos("aloha_transfer_cube", 1, tmp_path / "clean", cameras=(), progress=False)
    noisy = record_demos("aloha_transfer_cube", 1, tmp_path / "noisy", cameras=(), progress=False,
                         action_noise=0.01, noise_correlation=0.95)
    assert clean.successes == noisy.successes == clean.attempts == noisy.attempts == 1
    a, b = RobotDataset(tmp_path / "clean")._columns, RobotDataset(tmp_path / "noisy")._columns
    # The offset pushed the arm off the expert's path...
    assert np.abs(a["observation.state"][:, :6] - b["observation.state"][:, :6]).mean() > 0.005

    # ...and what was executed is not what was recorded: the recorded action is the expert's, so
    # the joints reached lag it by the offset on top of the controller's usual tracking error.
    def tracking(cols):
        return np.abs(cols["action"][:-1, :6] - cols["observation.state"][1:, :6]).mean()

    assert tracking(b) > 1.4 * tracking(a), (tracking(a), tracking(b))
    with pytest.raises(ValueError, match="action_noise"):
        record_demos("aloha_transfer_cube", 1, tmp_path / "bad", cameras=(), progress=False, action_noise=-1.0)
