"""What the VLAs need from the trainer, checked with small real policies: instructions reach forward as list[str],
--gradient-checkpointing reaches the policy, --init fine-tunes (weights and config from the checkpoint, stats from
the dataset), bf16 autocast on CPU, and the named recipes."""

import json
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from robokit.policies import Policy, PolicyConfig, register_policy
from robokit.training import RECIPES, TrainConfig, train
from robokit.training.trainer import build_policy

from .conftest import write_dataset

ACT_ARGS = ("chunk_size=4", "n_action_steps=4", "dim_model=16", "n_heads=2", "dim_feedforward=32",
            "n_encoder_layers=1", "n_vae_encoder_layers=1", "latent_dim=4")
ROOT = Path(__file__).parents[2]


@dataclass(frozen=True, kw_only=True)
class InstructedMLPConfig(PolicyConfig):
    type: ClassVar[str] = "test_instructed_mlp"
    hidden: int = 32
    """Width of the hidden layer."""


@register_policy
class InstructedMLP(Policy):
    """A tiny language-conditioned policy: the instruction's hash picks an embedding that joins the state."""

    config_class = InstructedMLPConfig

    def __init__(self, config, input_features, output_features, stats=None):
        super().__init__(config, input_features, output_features, stats)
        state_dim = self.state_feature.shape[0]
        self.instruction = nn.Embedding(97, config.hidden)
        self.body = nn.Sequential(nn.Linear(state_dim + config.hidden, config.hidden), nn.GELU(),
                                  nn.Linear(config.hidden, self.action_dim))
        self.checkpointing = False
        self.tasks_seen: list = []
        self.body_calls = 0

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.checkpointing = enabled

    def _embed(self, tasks: list[str]) -> torch.Tensor:
        ids = torch.tensor([zlib.crc32(t.encode()) % 97 for t in tasks], device=self.device)
        return self.instruction(ids)

    def _body(self, x):
        self.body_calls += 1
        return self.body(x)

    def compute_loss(self, batch):
        self.tasks_seen.append(batch["task"])
        x = torch.cat([batch["observation.state"], self._embed(batch["task"])], dim=-1)
        pred = checkpoint(self._body, x, use_reentrant=False) if self.checkpointing else self._body(x)
        loss = nn.functional.mse_loss(pred, batch["action"][:, 0])  # (B, 1, action_dim): the current action
        return loss, {"mse": loss.item()}

    def _predict_chunk(self, obs, **kwargs):
        task = obs.get("task", "")
        tasks = [task] * obs["observation.state"].shape[0] if isinstance(task, str) else task
        return self.body(torch.cat([obs["observation.state"], self._embed(tasks)], -1))[:, None]


def cfg(dataset, out, **kw):
    base = dict(dataset=str(dataset), output_dir=str(out), policy="act", policy_args=ACT_ARGS, steps=4, batch_size=4,
                num_workers=0, save_every=4, log_every=1, lr=1e-3, plot=False, seed=3)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("workers", [0, 1])
def test_instructions_reach_forward_as_a_list_of_str_with_gradient_checkpointing(camera_dataset, tmp_path, workers):
    policy_ref = {}

    def keep(policy, step):  # an eval hook: a handle on the trained policy object
        policy_ref["policy"] = policy
        return {}

    result = train(cfg(camera_dataset, tmp_path / "run", policy="test_instructed_mlp", policy_args=(), steps=3,
                       num_workers=workers, gradient_checkpointing=True), eval_fn=keep)
    policy = policy_ref["policy"]
    assert result.steps == 3 and len(policy.tasks_seen) == 3
    for tasks in policy.tasks_seen:
        assert isinstance(tasks, list) and len(tasks) == 4 and all(isinstance(t, str) for t in tasks)
        assert set(tasks) <= {"task number 0", "task number 1"}
    assert policy.checkpointing and policy.body_calls == 6  # forward + the recomputation in backward, per step


def test_gradient_checkpointing_on_a_policy_without_it_is_a_clear_error(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="policy type 'act' does not support it"):
        train(cfg(tiny_dataset, tmp_path / "run", gradient_checkpointing=True))


def test_init_takes_weights_and_config_from_the_checkpoint_and_stats_from_the_dataset(tiny_dataset, tmp_path):
    from robokit.data import RobotDataset

    pre = train(cfg(tiny_dataset, tmp_path / "pre", steps=30, save_every=30, lr=3e-3,
                    policy_args=(*ACT_ARGS, "dropout=0.0")))
    ckpt = tmp_path / "pre" / "checkpoints" / "000030" / "pretrained_model"
    other = write_dataset(tmp_path / "other", episodes=2, length=24, seed=7)  # same expert, other data and stats
    dataset = RobotDataset(str(other))
    policy = build_policy(cfg(other, tmp_path / "ft", policy=None, policy_args=("n_action_steps=2",), init=str(ckpt)),
                          dataset)
    source = Policy.from_pretrained(ckpt)
    for (name, x), y in zip(policy.state_dict().items(), source.state_dict().values()):
        assert torch.equal(x, y), name
    assert policy.config.dim_model == 16 and policy.config.dropout == 0.0 and policy.config.n_action_steps == 2
    mean = torch.as_tensor(dataset.meta.stats["action"]["mean"], dtype=torch.float32)
    assert torch.allclose(policy.normalizer.stat("action", "mean"), mean)
    assert not torch.allclose(source.normalizer.stat("action", "mean"), mean)

    # fine-tuning starts where the pretrained run ended, far below a fresh model's loss on the same batches
    tuned = train(cfg(other, tmp_path / "ft", policy=None, init=str(ckpt), steps=2, policy_args=("dropout=0.0",)))
    fresh = train(cfg(other, tmp_path / "fresh", steps=2, policy_args=(*ACT_ARGS, "dropout=0.0")))
    assert tuned.losses[0] < 0.5 * fresh.losses[0], (tuned.losses, fresh.losses, pre.losses[-5:])
    saved = Policy.from_pretrained(tmp_path / "ft" / "checkpoints" / "000002" / "pretrained_model")
    assert torch.allclose(saved.normalizer.stat("action", "mean"), mean)


def test_init_refuses_a_mismatch_by_name(tiny_dataset, tmp_path):
    from robokit.data import RobotDataset

    train(cfg(tiny_dataset, tmp_path / "pre", steps=1, save_every=1))
    ckpt = str(tmp_path / "pre" / "checkpoints" / "000001" / "pretrained_model")
    with pytest.raises(ValueError, match="--policy 'diffusion' but --init .* holds a policy of type 'act'"):
        build_policy(cfg(tiny_dataset, tmp_path / "x", policy="diffusion", init=ckpt), RobotDataset(str(tiny_dataset)))
    wider = {"observation.state": {"dtype": "float32", "shape": [6], "names": None},
             "observation.environment_state": {"dtype": "float32", "shape": [4], "names": None},
             "action": {"dtype": "float32", "shape": [6], "names": None}}
    ds = RobotDataset.create(tmp_path / "wide", fps=10, features=wider, use_videos=False)
    for i in range(8):
        ds.add_frame({"observation.state": torch.full((6,), float(i)).numpy(), "action": torch.ones(6).numpy(),
                      "observation.environment_state": torch.zeros(4).numpy(), "task": "t"})
    ds.save_episode()
    ds.finalize()
    with pytest.raises(ValueError, match=r"do not fit this dataset's features, e\.g\. '.*' is \(\d+, \d+\)"):
        build_policy(cfg(tmp_path / "wide", tmp_path / "y", policy=None, init=ckpt), RobotDataset(str(tmp_path / "wide")))
    with pytest.raises(FileNotFoundError, match="--init"):
        build_policy(cfg(tiny_dataset, tmp_path / "z", init=str(tmp_path / "nowhere")), RobotDataset(str(tiny_dataset)))


def test_bf16_autocast_on_cpu(tiny_dataset, tmp_path):
    fp32 = train(cfg(tiny_dataset, tmp_path / "fp32", steps=3, policy_args=(*ACT_ARGS, "dropout=0.0")))
    bf16 = train(cfg(tiny_dataset, tmp_path / "bf16", steps=3, amp="bf16", policy_args=(*ACT_ARGS, "dropout=0.0")))
    assert all(torch.isfinite(torch.tensor(bf16.losses)))
    assert bf16.losses != fp32.losses and bf16.losses == pytest.approx(fp32.losses, rel=0.05)  # bf16 matmuls ran
    saved = Policy.from_pretrained(tmp_path / "bf16" / "checkpoints" / "000003" / "pretrained_model")
    assert saved.dtype == torch.float32  # autocast trains float32 weights


def test_recipes_registry_and_cli_overrides():
    from robokit.commands.train import parse_args

    assert {"smolvla_metaworld", "smolvla_libero", "pi0_libero"} <= set(RECIPES)
    smolvla = TrainConfig.from_recipe("smolvla_libero", dataset="d")
    assert (smolvla.policy, smolvla.lr, smolvla.lr_min, smolvla.warmup_steps, smolvla.batch_size, smolvla.steps) == \
        ("smolvla", 1e-4, 2.5e-6, 1000, 64, 200_000)
    cfg = parse_args(["--recipe", "pi0_libero", "--dataset", "d", "--steps", "10", "--grad-clip-norm", "10",
                      "--policy-args", "chunk_size=10"])
    assert (cfg.policy, cfg.lr, cfg.batch_size, cfg.warmup_steps, cfg.amp) == ("pi0", 2.5e-5, 32, 1000, "bf16")
    assert cfg.steps == 10 and cfg.grad_clip_norm == 10.0  # flags win, even a value equal to TrainConfig's default
    assert cfg.policy_args[-1] == "chunk_size=10" and cfg.init == "lerobot/pi0_base"
    with pytest.raises(ValueError, match="Did you mean 'smolvla_libero'"):
        parse_args(["--recipe", "smolvla_libro", "--dataset", "d"])
    with pytest.raises(AttributeError):
        RECIPES["pi0_libero"].steps = 1  # frozen


def test_cli_unknown_recipe_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "robokit.cli", "train", "--recipe", "pi0_libro", "--dataset", "d"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error, hint = proc.stderr.strip().splitlines()  # the README's form: the error, then the --verbose hint
    assert error.startswith("robokit train: error: ") and "Did you mean 'pi0_libero'" in error
    assert hint == "(run with --verbose for the traceback)"


def test_cli_recipe_then_flags_trains(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "robokit.cli", "train", "--recipe", "act_aloha_state", "--dataset", str(tiny_dataset),
           "--steps", "2", "--batch-size", "4", "--num-workers", "0", "--no-plot", "--log-every", "1",
           "--output-dir", str(out), "--policy-args", "dim_model=16", "n_heads=2", "chunk_size=4", "n_action_steps=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    policy = Policy.from_pretrained(out / "checkpoints" / "000002" / "pretrained_model")
    assert policy.config.dim_model == 16 and policy.config.chunk_size == 4  # the flags
    assert policy.config.dim_feedforward == 1024  # the recipe
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == [1e-4, 1e-4]  # the recipe's lr


def test_init_onto_other_features_rebuilds_and_loads_when_the_weights_fit(camera_dataset, tiny_dataset, tmp_path):
    """A camera-less dataset with an env state instead of the camera: the MLP's weights do not depend on either."""
    from robokit.data import RobotDataset

    train(cfg(camera_dataset, tmp_path / "pre", policy="test_instructed_mlp", policy_args=(), steps=1, save_every=1))
    ckpt = tmp_path / "pre" / "checkpoints" / "000001" / "pretrained_model"
    policy = build_policy(cfg(tiny_dataset, tmp_path / "ft", policy=None, policy_args=(), init=str(ckpt)),
                          RobotDataset(str(tiny_dataset)))
    assert sorted(policy.input_features) == ["observation.environment_state", "observation.state"]
    source = Policy.from_pretrained(ckpt)
    assert sorted(source.input_features) == ["observation.images.front", "observation.state"]
    for (name, x), y in zip(policy.state_dict().items(), source.state_dict().values()):
        assert torch.equal(x, y), name
