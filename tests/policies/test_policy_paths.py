"""The one policy path rule: every form a user may give resolves to the same saved policy, or fails in one line."""

from __future__ import annotations

import pytest
import torch

from robokit.policies import Policy, make_config
from robokit.policies.policy import POLICY_PATH_FORMS, resolve_pretrained_dir
from robokit.training.checkpoint import save_checkpoint

from .conftest import make_features, make_observation, make_stats

TINY_ACT = dict(chunk_size=4, n_action_steps=4, dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1,
                n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=4, use_vae=False)


def make_training_output(root, steps=(2, 4)):
    """A real `robokit train` output layout: checkpoints/<step>/{pretrained_model,training_state} + the `last` file."""
    features = make_features(cams=(), state_dim=3, env_dim=2, action_dim=3)
    torch.manual_seed(0)
    policy = Policy.build(make_config("act", **TINY_ACT), features, make_stats(features))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    for step in steps:
        with torch.no_grad():
            next(policy.parameters()).add_(1.0)  # each checkpoint holds different weights
        save_checkpoint(root, step, policy, optimizer, scheduler, extra={})
    return policy, features


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("paths") / "outputs" / "train"
    policy, features = make_training_output(root)
    return root, policy, features


def test_every_local_form_resolves_to_the_last_checkpoints_policy(trained, monkeypatch):
    root, _, _ = trained
    expected = root / "checkpoints" / "000004" / "pretrained_model"
    assert (root / "checkpoints" / "last").is_file()  # the text file that broke the documented path
    monkeypatch.chdir(root.parent.parent)
    for given in [root, root / "checkpoints" / "last", root / "checkpoints" / "last" / "pretrained_model",
                  root / "checkpoints" / "000004", expected, expected / "config.json", "outputs/train",
                  "outputs/train/checkpoints/last/pretrained_model", "./outputs/train/checkpoints/last"]:
        assert resolve_pretrained_dir(given).resolve() == expected.resolve(), given
    # an older checkpoint by its step folder stays that checkpoint
    older = root / "checkpoints" / "000002"
    assert resolve_pretrained_dir(older) == older / "pretrained_model"


def test_from_pretrained_loads_the_documented_path(trained):
    root, policy, features = trained
    loaded = Policy.from_pretrained(root / "checkpoints" / "last" / "pretrained_model")
    obs = make_observation(features, batch=1)
    policy.eval()
    torch.testing.assert_close(loaded.predict_action_chunk(obs), policy.predict_action_chunk(obs))


def test_a_training_output_without_last_pointer_uses_its_highest_step(tmp_path):
    root = tmp_path / "train"
    make_training_output(root, steps=(3, 10))
    (root / "checkpoints" / "last").unlink()
    assert resolve_pretrained_dir(root) == root / "checkpoints" / "000010" / "pretrained_model"


def test_missing_folders_name_the_path_and_the_accepted_forms(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        resolve_pretrained_dir(tmp_path / "nope" / "checkpoints" / "last")
    assert "nope" in str(err.value) and all(form in str(err.value) for form in POLICY_PATH_FORMS)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no config.json, pretrained_model/ or checkpoints/"):
        resolve_pretrained_dir(empty)
    (tmp_path / "train" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has no checkpoint yet"):
        resolve_pretrained_dir(tmp_path / "train")
    (tmp_path / "train" / "checkpoints" / "last").write_text("000042\n")
    with pytest.raises(FileNotFoundError, match="names checkpoint '000042', which is not a folder"):
        resolve_pretrained_dir(tmp_path / "train" / "checkpoints" / "last" / "pretrained_model")


def test_a_hub_id_while_offline_is_one_clear_connection_error(tmp_path, monkeypatch):
    # HF_HUB_OFFLINE is read when huggingface_hub is imported: set the module constant it checks too.
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConnectionError) as err:
        Policy.from_pretrained("someone/some_policy")
    message = str(err.value)
    assert "'someone/some_policy'" in message and "offline" in message and "\n" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


MISSING = ("outputs/train/checkpoints/last/pretrained_model", "does not exist; expected one of")
OFFLINE_HUB_ID = ("someone/policy", "cannot reach the hub (offline)")


@pytest.mark.parametrize("command, case", [
    (["eval", "--env", "pusht", "--episodes", "1", "--policy"], MISSING),
    (["eval", "--env", "pusht", "--episodes", "1", "--policy"], OFFLINE_HUB_ID),
    (["run-policy", "--env", "pusht", "--local", "--policy"], MISSING),
    (["record", "--robot.type", "so101_follower", "--robot.port", "/dev/null", "--root", "rec", "--task", "t",
      "--policy-path"], OFFLINE_HUB_ID),
])
def test_commands_answer_a_wrong_policy_path_in_one_line(tmp_path, command, case):
    import os
    import subprocess
    import sys

    policy, expected = case
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-m", "robokit.cli", *command, policy], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]
    assert expected in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "rec").exists()  # record stopped before touching the robot or the dataset
