"""The env registry: names, features, shapes, headless rendering, vector == single."""

from __future__ import annotations

import os

import numpy as np
import pytest

from robokit.envs import available_envs, expand_env_name, get_spec, make_env

from .conftest import SMALL, require

ENVS = {
    "pusht": ("gym_pusht",),
    "aloha_transfer_cube": ("gym_aloha",),
    "aloha_insertion": ("gym_aloha",),
    "metaworld/door-open": ("metaworld",),
}


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ValueError, match="Did you mean 'pusht'"):
        get_spec("pushtt")
    with pytest.raises(ValueError, match="metaworld/door-open"):
        get_spec("metaworld/dor-open")


def test_groups_expand_to_the_mt50_split():
    sizes = {g: len(expand_env_name(f"metaworld/{g}")) for g in ("easy", "medium", "hard", "very_hard")}
    assert sizes == {"easy": 28, "medium": 11, "hard": 6, "very_hard": 5}
    assert len(set(expand_env_name("metaworld/mt50"))) == 50
    assert expand_env_name("metaworld/push-v3") == ["metaworld/push"]
    assert "aloha_insertion" in available_envs()
    with pytest.raises(ValueError, match="group"):
        get_spec("metaworld/easy")


def test_headless_backend_chosen_before_mujoco():
    if os.environ.get("DISPLAY"):
        pytest.skip("a display is present: no headless backend is forced")
    assert os.environ.get("MUJOCO_GL") in ("egl", "osmesa")


@pytest.mark.parametrize("name", list(ENVS))
def test_reset_and_step_match_declared_features(name):
    require(*ENVS[name])
    image_size = None if name == "pusht" else SMALL
    env = make_env(name, seed=0, fast_render=True, image_size=image_size)
    try:
        obs, _ = env.reset()
        for _ in range(2):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        features = env.features
        assert isinstance(env.task, str) and env.task and env.fps > 0
        assert set(obs) == {k for k in features if k != "action"}
        for key, value in obs.items():
            assert value.shape == (1, *features[key]["shape"]), key
            assert value.dtype == (np.uint8 if features[key]["dtype"] == "video" else np.float32), key
        assert env.action_space.shape == (1, *features["action"]["shape"])
        assert reward.shape == (1,) and terminated.dtype == bool
        cams = [k for k in features if k.startswith("observation.images.")]
        assert cams and all(features[k]["names"] == ["height", "width", "channels"] for k in cams)
        assert obs[cams[0]].std() > 0  # a real rendered image, not a blank buffer
    finally:
        env.close()


@pytest.mark.parametrize("name", ["pusht", "aloha_transfer_cube"])
def test_vector_env_matches_single_env(name):
    require(*ENVS[name])
    kwargs = dict(fast_render=True, image_size=None if name == "pusht" else SMALL)
    vec = make_env(name, n_envs=2, seed=10, **kwargs)
    single = make_env(name, n_envs=1, seed=11, **kwargs)
    try:
        v_obs, _ = vec.reset()
        s_obs, _ = single.reset()
        rng = np.random.default_rng(0)
        low, high = single.action_space.low[0], single.action_space.high[0]
        for _ in range(3):
            action = rng.uniform(low, high).astype(np.float32)
            v_obs, v_rew, *_ = vec.step(np.stack([action, action]))
            s_obs, s_rew, *_ = single.step(action[None])
        for key in s_obs:
            np.testing.assert_allclose(v_obs[key][1], s_obs[key][0], atol=1e-5, err_msg=key)
        assert v_rew[1] == pytest.approx(s_rew[0])
        assert not np.allclose(v_obs["observation.environment_state"][0], v_obs["observation.environment_state"][1])
    finally:
        vec.close()
        single.close()


def test_fast_render_changes_the_image(need_aloha):
    slow = make_env("aloha_transfer_cube", seed=0, image_size=SMALL)
    fast = make_env("aloha_transfer_cube", seed=0, image_size=SMALL, fast_render=True)
    try:
        a, _ = slow.reset()
        b, _ = fast.reset()
        np.testing.assert_array_equal(a["observation.state"], b["observation.state"])
        assert not np.array_equal(a["observation.images.top"], b["observation.images.top"])  # no shadows
    finally:
        slow.close()
        fast.close()


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="n_envs"):
        make_env("pusht", n_envs=0)
    require("gym_pusht")
    with pytest.raises(ValueError, match="image_size"):
        make_env("pusht", image_size=(0, 5))
