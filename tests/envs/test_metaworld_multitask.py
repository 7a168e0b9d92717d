"""Language-conditioned multi-task Meta-World: one dataset of several tasks, each frame's task its
instruction; eval passes the instruction to the policy, can shuffle it, and writes a success table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robokit.cli import main as cli
from robokit.envs import evaluate
from robokit.envs.evaluation import check_unseen_seeds, success_table, success_table_markdown
from robokit.envs.metaworld import INSTRUCTIONS, MT10, TASK_NAMES
from robokit.envs.registry import expand_env_name

TWO = "metaworld/reach,drawer-open"
"""Two tasks the package's scripted policies solve within ~100 steps."""
SIZE = (32, 32)

pytestmark = pytest.mark.usefixtures("need_metaworld")


class Recorder:
    """A policy that remembers the `task` of every observation and otherwise acts as `inner` does."""

    def __init__(self, inner):
        self.inner, self.tasks, self.keys = inner, [], set()
        self.reads_images = getattr(inner, "reads_images", True)

    def reset(self):
        self.inner.reset()

    def select_action(self, obs):
        self.tasks.append(list(obs["task"]))
        self.keys |= set(obs)
        return self.inner.select_action(obs)


class RecordingExperts:
    """The scripted expert of each env, recorded (`for_env` is how evaluate asks for the policy of an env)."""

    def __init__(self, names):
        from robokit.envs.experts import make_expert

        self.by_env = {name: Recorder(make_expert(name)) for name in names}

    def for_env(self, name):
        return self.by_env[name]


@pytest.fixture(scope="module")
def two_task_demos(tmp_path_factory):
    pytest.importorskip("metaworld")
    root = tmp_path_factory.mktemp("mw") / "demos"
    code = cli(["demos", TWO, "--episodes", "1", "--out", str(root), "--seed", "5", "--fast-render",
                "--image-size", str(SIZE[0]), str(SIZE[1]), "--video-codec", "h264"])
    assert code == 0
    return root


def test_every_task_has_its_own_instruction_and_mt10_is_metaworlds():
    import metaworld.env_dict

    assert set(INSTRUCTIONS) == set(TASK_NAMES) and len(set(INSTRUCTIONS.values())) == 50
    assert [name.removesuffix("-v3") for name in metaworld.env_dict.MT10_V3] == list(MT10)
    assert expand_env_name("metaworld/MT10") == [f"metaworld/{t}" for t in MT10]
    # Meta-World's spelling, and bare task names after the first
    assert expand_env_name("metaworld/reach-v3,push-v3,pick-place") == [
        "metaworld/reach", "metaworld/push", "metaworld/pick-place"]
    with pytest.raises(ValueError, match="more than once"):
        expand_env_name("metaworld/reach,reach")
    with pytest.raises(ValueError, match="Did you mean 'metaworld/push'"):
        expand_env_name("metaworld/reach,pushh")


def test_demos_command_rejects_a_bad_task_list_before_making_a_folder(tmp_path, capsys):
    assert cli(["demos", "metaworld/reach,pushh", "--out", str(tmp_path / "d")]) == 2
    assert "Did you mean 'metaworld/push'" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_demos_of_two_tasks_make_one_dataset_with_each_tasks_instruction(two_task_demos):
    from robokit.data import RobotDataset

    ds = RobotDataset(two_task_demos)
    assert ds.num_episodes == 2 and ds.fps == 80
    assert ds.meta.task_list == [INSTRUCTIONS["reach"], INSTRUCTIONS["drawer-open"]]
    assert ds.features["observation.state"]["shape"] == [4]
    assert ds.features["observation.environment_state"]["shape"] == [39]
    assert ds.features["action"]["shape"] == [4]
    assert ds.features["observation.images.corner2"]["shape"] == [*SIZE, 3]
    episode = np.asarray(ds._columns["episode_index"])
    first, last = ds[0], ds[len(ds) - 1]
    assert first["task"] == "Reach the goal with the gripper." and last["task"] == "Open the drawer."
    assert tuple(first["observation.images.corner2"].shape) == (3, *SIZE)
    # every frame of an episode carries its own task's instruction
    assert {ds[i]["task"] for i in np.flatnonzero(episode == 1)[::10]} == {"Open the drawer."}
    meta = json.loads((two_task_demos / "meta/demos.json").read_text())
    assert {n: e["episode_seeds"] for n, e in meta["envs"].items()} == {"metaworld/reach": [5],
                                                                        "metaworld/drawer-open": [5]}
    assert cli(["dataset", "check", str(two_task_demos)]) == 0


def test_demo_seeds_are_layouts_and_eval_refuses_them(two_task_demos, capsys):
    """The seed is the layout: eval's reset with a demo seed shows the demo's first frame, other seeds do not."""
    from robokit.data import RobotDataset
    from robokit.envs.registry import make_single_env

    demo_start = RobotDataset(two_task_demos)._columns["observation.environment_state"][0]
    env = make_single_env("metaworld/reach", cameras=())
    same = env.reset(seed=5)[0]["observation.environment_state"]
    other = env.reset(seed=6)[0]["observation.environment_state"]
    env.close()
    np.testing.assert_allclose(same, demo_start, atol=1e-6)
    assert np.abs(other[-3:] - demo_start[-3:]).max() > 1e-3  # another goal position

    check_unseen_seeds(TWO, 6, 20, two_task_demos)  # 6..25: unseen
    with pytest.raises(ValueError, match=r"seed 5 of metaworld/reach"):
        check_unseen_seeds(TWO, 0, 6, two_task_demos)
    code = cli(["eval", "--policy", "random", "--env", TWO, "--seed", "3", "--episodes", "5",
                "--demos", str(two_task_demos)])
    assert code == 2 and "expected unseen seeds" in capsys.readouterr().err


def test_eval_passes_each_tasks_instruction_and_shuffles_them_on_request():
    names = expand_env_name(TWO)
    plain = RecordingExperts(names)
    info = evaluate(plain, TWO, n_episodes=1, seed=100, progress=False, max_episode_steps=120)
    for name, policy in plain.by_env.items():
        assert policy.tasks and all(t == [INSTRUCTIONS[name.split("/")[1]]] for t in policy.tasks)
        # an expert reads no image: none was rendered for it
        assert policy.keys == {"observation.state", "observation.environment_state", "task"}
    rows = success_table(info)
    assert [r["env"] for r in rows] == [*names, "average"]
    assert all(r["pc_success"] == 100.0 for r in rows)  # the experts solve both, whatever they are told
    assert rows[-1]["successes"] == 2 and rows[-1]["episodes"] == 2

    shuffled = RecordingExperts(names)
    info = evaluate(shuffled, TWO, n_episodes=1, seed=100, progress=False, max_episode_steps=3,
                    shuffle_instructions=True)
    told = {name: {t for ts in p.tasks for t in ts} for name, p in shuffled.by_env.items()}
    assert told == {"metaworld/reach": {INSTRUCTIONS["drawer-open"]}, "metaworld/drawer-open": {INSTRUCTIONS["reach"]}}
    table = success_table_markdown(success_table(info))
    assert "instruction given" in table and "| metaworld/reach | Reach the goal with the gripper. | Open the drawer. |" in table


def test_a_learned_policy_gets_the_instruction_batched_and_ignores_it(tmp_path):
    """A torch Policy that does not read language runs with the extra key; the key holds one string per batch row."""
    import torch

    from robokit.envs.registry import get_spec
    from robokit.policies import Policy, make_config

    features = get_spec("metaworld/reach").features(cameras=())
    stats = {k: {"mean": np.zeros(v["shape"], np.float32), "std": np.ones(v["shape"], np.float32),
                 "min": -np.ones(v["shape"], np.float32), "max": np.ones(v["shape"], np.float32)}
             for k, v in features.items()}
    torch.manual_seed(0)
    policy = Policy.build(make_config("act", dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1,
                                      use_vae=False, chunk_size=4, n_action_steps=4), features, stats)
    seen = []
    select = policy.select_action
    policy.select_action = lambda obs, **kw: (seen.append(list(obs["task"])), select(obs, **kw))[1]
    info = evaluate(policy, TWO, n_episodes=2, batch_size=2, seed=100, progress=False, max_episode_steps=3)
    assert seen[:3] == [[INSTRUCTIONS["reach"]] * 2] * 3 and seen[3:] == [[INSTRUCTIONS["drawer-open"]] * 2] * 3
    assert info["per_env"]["metaworld/reach"]["instruction"] == INSTRUCTIONS["reach"]


def test_pusht_eval_passes_its_task_text(need_pusht):
    from robokit.envs.experts import RandomPolicy
    from robokit.envs.pusht import TASK

    policy = Recorder(RandomPolicy(np.zeros(2), np.full(2, 512.0), seed=0))
    evaluate(policy, "pusht", n_episodes=1, seed=0, progress=False, max_episode_steps=2)
    assert policy.tasks == [[TASK], [TASK]]


def test_eval_command_writes_the_success_table(tmp_path, capsys):
    out = tmp_path / "eval"
    code = cli(["eval", "--policy", "expert", "--env", TWO, "--episodes", "1", "--seed", "100", "--out", str(out),
                "--max-videos", "0", "--shuffle-instructions"])
    assert code == 0
    rows = json.loads((out / "success_table.json").read_text())
    assert [(r["env"], r["pc_success"]) for r in rows] == [
        ("metaworld/reach", 100.0), ("metaworld/drawer-open", 100.0), ("average", 100.0)]
    assert rows[0]["instruction"] == INSTRUCTIONS["drawer-open"]
    table = (out / "success_table.md").read_text()
    assert table.splitlines()[-1] == "| **average** |  |  | 100.0% | 2/2 |"
    assert table.strip() in capsys.readouterr().out
    assert json.loads((out / "eval_info.json").read_text())["shuffle_instructions"] is True
    assert cli(["eval", "--policy", "expert", "--env", "metaworld/reach", "--shuffle-instructions"]) == 2
