"""Two CPU processes under torchrun (gloo): DDP and FSDP give the one-process run's losses and weights on the same
global batch, log once, write checkpoints that load, and FSDP resumes exactly."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robokit.policies import Policy
from robokit.training import TrainConfig, train

from .conftest import free_port

# Deterministic tiny ACT (no VAE sampling, no dropout): equal batches give equal losses in any process layout.
ACT_ARGS = ("chunk_size=4", "n_action_steps=4", "dim_model=16", "n_heads=2", "dim_feedforward=32",
            "n_encoder_layers=1", "n_vae_encoder_layers=1", "latent_dim=4", "use_vae=false", "dropout=0.0")
ROOT = Path(__file__).parents[2]


def torchrun(dataset, out, *args, tmp_path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "robokit.cli", "train", "--dataset", str(dataset), "--policy-args", *ACT_ARGS,
           "--num-workers", "0", "--output-dir", str(out), "--log-every", "1", "--no-plot", "--seed", "3", *args]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def one_process(dataset, out, steps: int, batch_size: int, **kw):
    return train(TrainConfig(dataset=str(dataset), output_dir=str(out), policy="act", policy_args=ACT_ARGS,
                             steps=steps, batch_size=batch_size, num_workers=0, log_every=1, plot=False, seed=3,
                             save_every=steps, **kw))


def losses(out) -> list[float]:
    return [json.loads(line)["loss"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def assert_same_weights(a_dir, b_dir, atol):
    a, b = Policy.from_pretrained(a_dir), Policy.from_pretrained(b_dir)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x, y, atol=atol), (name, (x - y).abs().max().item())


def test_ddp_with_a_camera_no_stride_warning_one_final_line_same_as_one_process(camera_dataset, tmp_path):
    """The ResNet's 1x1 convolutions get channels-last gradients; DDP used to warn "Grad strides do not match
    bucket view strides" on every run, and each rank printed its own final loss."""
    proc = torchrun(camera_dataset, tmp_path / "ddp", "--steps", "2", "--batch-size", "2", "--grad-accum-steps", "2",
                    "--save-every", "2", "--time-budget-min", "5", "--schedule-over-budget",  # rank 0's clock, shared
                    tmp_path=tmp_path)
    output = proc.stdout + proc.stderr
    assert "Grad strides" not in output
    finals = [line for line in proc.stdout.splitlines() if "final loss" in line]
    assert len(finals) == 1, proc.stdout
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]  # one writer (rank 0)
    assert (tmp_path / "ddp" / "checkpoints" / "last").read_text().strip() == "000002"
    reference = one_process(camera_dataset, tmp_path / "one", steps=2, batch_size=8)
    assert losses(tmp_path / "ddp") == pytest.approx(reference.losses, rel=1e-4)
    assert f"final loss {reference.final_loss:.4f}" in finals[0]  # the average over the processes, not rank 0's
    assert_same_weights(tmp_path / "ddp" / "checkpoints" / "000002" / "pretrained_model",
                        tmp_path / "one" / "checkpoints" / "000002" / "pretrained_model", atol=1e-5)


def test_fsdp_same_loss_as_one_process_checkpoint_loads_and_resumes(tiny_dataset, tmp_path):
    """With an EMA of the weights (sharded like them; gathered for the checkpoint, scattered on resume)."""
    out = tmp_path / "fsdp"
    torchrun(tiny_dataset, out, "--distributed", "fsdp", "--steps", "3", "--batch-size", "4", "--save-every", "3",
             "--ema-decay", "0.9", tmp_path=tmp_path)
    reference = one_process(tiny_dataset, tmp_path / "one", steps=4, batch_size=8, ema_decay=0.9)
    assert losses(out) == pytest.approx(reference.losses[:3], rel=1e-5)
    policy = Policy.from_pretrained(out / "checkpoints" / "000003" / "pretrained_model")  # full tensors, from rank 0
    assert policy.select_action({"observation.state": torch.zeros(1, 4),
                                 "observation.environment_state": torch.zeros(1, 4)}).shape == (1, 4)
    # the sharded optimizer state was saved whole: a resumed run continues the one-process run's trajectory
    proc = torchrun(tiny_dataset, out, "--distributed", "fsdp", "--steps", "4", "--batch-size", "4", "--save-every",
                    "4", "--ema-decay", "0.9", "--resume", tmp_path=tmp_path)
    assert "final loss" in proc.stdout
    assert (proc.stdout + proc.stderr).count("resuming from") == 1  # rank 0 reports, not every process
    assert losses(out) == pytest.approx(reference.losses, rel=1e-5)
    assert_same_weights(out / "checkpoints" / "000004" / "pretrained_model",  # the EMA weights
                        tmp_path / "one" / "checkpoints" / "000004" / "pretrained_model", atol=1e-6)
    from safetensors.torch import load_file

    raw = load_file(str(out / "checkpoints" / "000004" / "training_state" / "model.safetensors"))
    raw_one = load_file(str(tmp_path / "one" / "checkpoints" / "000004" / "training_state" / "model.safetensors"))
    assert raw.keys() == raw_one.keys() and all(torch.allclose(raw[k], raw_one[k], atol=1e-6) for k in raw)


def test_fsdp_refuses_what_it_cannot_do_yet(tmp_path):
    from robokit.training.distributed import Dist
    from robokit.training.trainer import _check_fsdp_options

    fsdp = Dist(rank=0, world=2, local_rank=0, strategy="fsdp")
    with pytest.raises(ValueError, match="fsdp' does not support amp='fp16'"):
        _check_fsdp_options(TrainConfig(distributed="fsdp", amp="fp16"), fsdp, None)
    with pytest.raises(ValueError, match="evaluation during training"):
        _check_fsdp_options(TrainConfig(distributed="fsdp"), fsdp, lambda policy, step: {})
    _check_fsdp_options(TrainConfig(distributed="fsdp", amp="bf16"), fsdp, None)
    with pytest.raises(ValueError, match="distributed='nccl'"):
        TrainConfig(distributed="nccl")


def test_fsdp_units_are_the_policys_own_choice():
    from robokit.training.distributed import fsdp_units

    class Layers(torch.nn.Module):
        def __init__(self, units):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])
            self.units = units

        def fsdp_units(self):
            return self.units(self)

    assert fsdp_units(torch.nn.Sequential(torch.nn.ModuleList([torch.nn.Linear(2, 2)]))) == []  # no guessing
    chosen = Layers(lambda m: list(m.layers))
    assert fsdp_units(chosen) == list(chosen.layers)
    with pytest.raises(ValueError, match="not a submodule"):
        fsdp_units(Layers(lambda m: [torch.nn.Linear(2, 2)]))
