"""Simulated tasks with the robot/dataset contract, scripted experts, evaluation, SimRobot.

    from robokit.envs import make_env, make_expert, evaluate
    env = make_env("aloha_transfer_cube", n_envs=4, seed=0, fast_render=True)
    env.features, env.fps, env.task          # the same contract as a robot and a dataset
    expert = make_expert("aloha_transfer_cube")
    info = evaluate(expert, "aloha_transfer_cube", n_episodes=10, batch_size=2, seed=0)

Imports are lazy: `import robokit.envs` loads no simulator. Headless rendering is set up
(`MUJOCO_GL=egl`, or osmesa) here, before any simulator can import MuJoCo.
"""

from robokit.envs.rendering import configure_headless_gl

configure_headless_gl()

_LAZY = {
    "EnvSpec": "robokit.envs.registry",
    "make_env": "robokit.envs.registry",
    "make_envs": "robokit.envs.registry",
    "make_single_env": "robokit.envs.registry",
    "available_envs": "robokit.envs.registry",
    "expand_env_name": "robokit.envs.registry",
    "get_spec": "robokit.envs.registry",
    "make_expert": "robokit.envs.experts",
    "RandomPolicy": "robokit.envs.experts",
    "evaluate": "robokit.envs.evaluation",
    "record_demos": "robokit.envs.demos",
    "SimRobot": "robokit.envs.sim_robot",
    "SimRobotConfig": "robokit.envs.sim_robot",
}

__all__ = ["configure_headless_gl", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robokit.envs' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
