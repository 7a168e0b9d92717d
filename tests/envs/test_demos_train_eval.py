"""The whole loop through the CLI: `robokit demos` -> `robokit train --env` (periodic evaluation) -> `robokit eval`.

A tiny ACT with one small camera, two expert episodes, a few steps: it checks the pieces fit
together (features, stats, checkpoints, evaluation at the training image size), not that the
policy learns (see docs/policies.md for the learning runs).
"""

from __future__ import annotations

import json

import av
import pytest
import torch

from robokit.cli import main as cli
from robokit.data import RobotDataset
from robokit.policies import Policy

from .conftest import SMALL

TINY_ACT = ["chunk_size=10", "n_action_steps=10", "dim_model=16", "n_heads=2", "dim_feedforward=32",
            "n_encoder_layers=1", "n_vae_encoder_layers=1", "latent_dim=4"]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and never oversubscribes a busy host


def test_demos_train_eval_loop(need_aloha, tmp_path):
    data, out, ev = tmp_path / "demos", tmp_path / "train", tmp_path / "eval"
    assert cli(["demos", "--env", "aloha_transfer_cube", "--episodes", "2", "--out", str(data), "--seed", "0",
                "--fast-render", "--image-size", str(SMALL[0]), str(SMALL[1])]) == 0
    assert RobotDataset(str(data)).meta.total_episodes == 2

    assert cli(["train", "--dataset", str(data), "--policy", "act", "--policy-args", *TINY_ACT,
                "--output-dir", str(out), "--steps", "4", "--batch-size", "4", "--num-workers", "0", "--lr", "1e-3",
                "--save-every", "2", "--log-every", "1", "--env", "aloha_transfer_cube", "--eval-every", "2",
                "--eval-episodes", "1", "--no-plot"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/pc_success" in r]
    assert [r["step"] for r in evals] == [2, 4]  # every eval_every steps, and not twice at the end
    assert all(0.0 <= r["eval/pc_success"] <= 100.0 and r["eval/n_episodes"] == 1 for r in evals)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert (out / "checkpoints" / "last").read_text().strip() == "000004"

    # `--policy` takes the training output folder (its last checkpoint) as well as a model folder.
    assert cli(["eval", "--policy", str(out), "--env", "aloha_transfer_cube", "--episodes", "1", "--seed", "0",
                "--out", str(ev), "--max-videos", "1"]) == 0
    info = json.loads((ev / "eval_info.json").read_text())
    assert info["policy"] == str(out)
    assert info["aggregated"]["n_episodes"] == 1 and len(info["per_episode"]) == 1
    assert 1 <= info["per_episode"][0]["steps"] <= 400
    # The env rendered the camera at the size the policy was trained on, not the env's 480x640.
    with av.open(info["video_paths"][0]) as container:
        stream = container.streams.video[0]
        assert (stream.height, stream.width) == SMALL


def test_state_only_policy_is_evaluated_without_rendering(need_aloha, tmp_path):
    """`robokit demos --cameras` (no names) records a state-only dataset; its policy is evaluated on states alone."""
    data = tmp_path / "demos"
    assert cli(["demos", "--env", "aloha_transfer_cube", "--episodes", "1", "--out", str(data), "--cameras"]) == 0
    features = RobotDataset(str(data)).features
    assert not [k for k in features if k.startswith("observation.images.")]
    from robokit.envs import evaluate
    from robokit.training import TrainConfig, train

    result = train(TrainConfig(dataset=str(data), output_dir=str(tmp_path / "train"), policy="act",
                               policy_args=tuple(TINY_ACT), steps=2, batch_size=4, num_workers=0, plot=False))
    policy = Policy.from_pretrained(tmp_path / "train" / "checkpoints" / "000002" / "pretrained_model")
    assert policy.image_features == [] and result.steps == 2
    before = torch.get_rng_state()
    info = evaluate(policy, "aloha_transfer_cube", n_episodes=1, seed=0, progress=False, max_episode_steps=20)
    assert info["per_episode"][0]["steps"] == 20 and info["video_paths"] == []
    assert torch.equal(torch.get_rng_state(), before)  # evaluation leaves the caller's RNG stream alone
