"""Policy push: the repo's files and model card written locally, and the upload path reached with the hub
offline (no test touches the network), as tests/data/test_hub.py does for datasets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from robokit.policies import Policy
from robokit.policies.hub import model_card, stage_policy

from .conftest import make_observation
from .test_policy_paths import make_training_output

ROBOKIT = [sys.executable, "-m", "robokit.cli"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub") / "outputs" / "train"
    policy, features = make_training_output(root)
    return root, policy, features


def test_staged_repo_holds_the_last_checkpoint_and_a_model_card(trained, tmp_path):
    from huggingface_hub import ModelCard

    root, policy, features = trained
    out = stage_policy(root, tmp_path / "repo", "me/act_test", dataset_repo_id="me/pusht")
    checkpoint = root / "checkpoints" / "000004" / "pretrained_model"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                     "normalization.safetensors"]
    for name in ("config.json", "model.safetensors", "normalization.safetensors"):
        assert (out / name).read_bytes() == (checkpoint / name).read_bytes()

    card = ModelCard.load(out / "README.md")  # huggingface_hub's own parser of the front matter
    assert card.data.library_name == "robokit" and card.data.pipeline_tag == "robotics"
    assert {"robotics", "robokit", "act"} <= set(card.data.tags)
    assert card.data.datasets == ["me/pusht"] and card.data.license == "apache-2.0"
    assert "on [me/pusht](https://huggingface.co/datasets/me/pusht) for 4 steps" in card.text
    assert "| `observation.environment_state` | input (env) | (2,) |" in card.text
    assert "| `action` | output (action) | (3,) |" in card.text
    assert 'Policy.from_pretrained("me/act_test")' in card.text

    loaded = Policy.from_pretrained(out)
    obs = make_observation(features, batch=1)
    policy.eval()
    torch.testing.assert_close(loaded.predict_action_chunk(obs), policy.predict_action_chunk(obs))


def test_card_without_dataset_or_steps_says_so():
    text = model_card({"type": "diffusion", "input_features": {}, "output_features": {}}, "me/dp")
    assert "datasets:" not in text and "- steps: unknown" in text and "- dataset: not given" in text
    assert text.startswith("---\nlibrary_name: robokit\n")


def test_push_policy_cli_writes_the_repo_locally(trained, tmp_path):
    root, _, _ = trained
    out = subprocess.run([*ROBOKIT, "push-policy", str(root), "me/act_test", "--dataset", "me/pusht", "--steps", "7",
                          "--local-dir", str(tmp_path / "staged")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(not uploaded)" in out.stdout
    assert "for 7 steps" in (tmp_path / "staged" / "README.md").read_text()


def test_push_while_offline_is_one_line(trained, tmp_path):
    root, _, _ = trained
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([*ROBOKIT, "push-policy", str(root), "me/act_test"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "robokit push-policy: error: push-policy 'me/act_test': the hub is offline here (HF_HUB_OFFLINE is set)" in out.stderr
    missing = subprocess.run([*ROBOKIT, "push-policy", str(tmp_path / "nope"), "me/act_test"], capture_output=True,
                             text=True, timeout=120, env=env)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "does not exist" in missing.stderr


def test_policy_push_to_hub_reaches_the_hub_client(trained, monkeypatch):
    import huggingface_hub.constants

    _, policy, _ = trained
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="'me/act_test': the hub is offline here"):
        policy.push_to_hub("me/act_test", dataset_repo_id="me/pusht")
