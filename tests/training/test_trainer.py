import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robokit.policies import Policy
from robokit.training import TrainConfig, train
from robokit.training.trainer import lr_lambda

ACT_ARGS = ("chunk_size=4", "n_action_steps=4", "dim_model=16", "n_heads=2", "dim_feedforward=32",
            "n_encoder_layers=1", "n_vae_encoder_layers=1", "latent_dim=4")
DIFFUSION_ARGS = ("horizon=8", "n_action_steps=4", "down_dims=[16,32]", "n_groups=4", "diffusion_step_embed_dim=16",
                  "crop_shape=null", "num_inference_steps=4")


def cfg(dataset, out, **kw):
    base = dict(dataset=str(dataset), output_dir=str(out), policy="act", policy_args=ACT_ARGS, steps=8, batch_size=4,
                num_workers=0, save_every=4, log_every=1, lr=1e-3, plot=False, seed=3)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("extra", [dict(), dict(grad_accum_steps=2, ema_decay=0.9, scheduler="cosine", warmup_steps=2)])
def test_resume_continues_exactly(tiny_dataset, tmp_path, extra):
    full = train(cfg(tiny_dataset, tmp_path / "full", **extra))
    part = train(cfg(tiny_dataset, tmp_path / "part", **extra), stop_after=4)  # "killed" after the step-4 checkpoint
    assert part.steps == 4 and part.losses == full.losses[:4]
    assert (tmp_path / "part" / "checkpoints" / "last").read_text().strip() == "000004"
    resumed = train(cfg(tiny_dataset, tmp_path / "part", resume=True, **extra))
    assert resumed.losses == full.losses[4:]  # bit-identical losses at every later step
    a = Policy.from_pretrained(tmp_path / "full" / "checkpoints" / "000008" / "pretrained_model")
    b = Policy.from_pretrained(tmp_path / "part" / "checkpoints" / "000008" / "pretrained_model")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_outputs_learning_and_eval_hook(tiny_dataset, tmp_path):
    calls = []

    def eval_fn(policy, step):
        calls.append(step)
        assert not policy.training
        return {"success_rate": 0.5}

    result = train(cfg(tiny_dataset, tmp_path / "run", steps=60, save_every=30, log_every=10, plot=True,
                       eval_every=30, lr=3e-3, policy_args=(*ACT_ARGS, "dropout=0.0")), eval_fn=eval_fn)
    assert calls == [30, 60]
    early, late = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert late < 0.5 * early, (early, late)
    out = tmp_path / "run"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "grad_norm", "samples_per_s", "l1_loss", "kld_loss"} <= set(records[0])
    assert any("eval/success_rate" in r for r in records)
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["000030", "000060", "last"]
    policy = Policy.from_pretrained(out / "checkpoints" / "000060" / "pretrained_model")
    obs = {"observation.state": torch.zeros(1, 4), "observation.environment_state": torch.ones(1, 4)}
    assert policy.select_action(obs).shape == (1, 4)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg(tiny_dataset, out))


def test_lr_schedules():
    cosine = lr_lambda("cosine", warmup=10, total=110)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(60) == pytest.approx(0.5) and cosine(110) == pytest.approx(0.0)
    assert lr_lambda("constant", 0, 100)(99) == 1.0
    floored = lr_lambda("cosine", warmup=10, total=110, floor=0.025)  # --lr-min 2.5e-6 at lr 1e-4
    assert floored(110) == pytest.approx(0.025) and floored(60) == pytest.approx(0.025 + 0.975 * 0.5)


def test_cli_trains_diffusion(tiny_dataset, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "robokit.cli", "train", "--dataset", str(tiny_dataset), "--policy", "diffusion",
           "--policy-args", *DIFFUSION_ARGS, "--steps", "3", "--batch-size", "4", "--num-workers", "0",
           "--output-dir", str(out), "--save-every", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained 3 steps" in proc.stdout
    assert (proc.stdout + proc.stderr).count("final loss") == 1  # the trainer's log line repeated the summary
    assert Policy.from_pretrained(out / "checkpoints" / "000003" / "pretrained_model").config.horizon == 8


def test_train_piped_prints_a_few_progress_lines(tiny_dataset, tmp_path):
    """`robokit train ... | tee log`: the log used to hold one carriage-return frame per step."""
    cmd = [sys.executable, "-m", "robokit.cli", "train", "--dataset", str(tiny_dataset), "--policy", "act",
           "--policy-args", *ACT_ARGS, "--steps", "200", "--batch-size", "4", "--num-workers", "0",
           "--save-every", "200", "--no-plot", "--output-dir", str(tmp_path / "run")]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2], env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert "\r" not in output
    progress_lines = [line for line in output.splitlines() if line.startswith("train:")]
    assert 1 <= len(progress_lines) <= 11, progress_lines
    assert len(output.splitlines()) < 25, output


def test_time_budget_stops_and_checkpoints_the_last_step(tiny_dataset, tmp_path):
    calls = []
    result = train(cfg(tiny_dataset, tmp_path / "run", steps=100_000, save_every=50_000, plot=True,
                       time_budget_min=0.1 / 60),  # 0.1 s
                   eval_fn=lambda policy, step: calls.append(step) or {"success_rate": 0.0})
    assert 1 <= result.steps < 100_000
    out = tmp_path / "run"
    assert (out / "checkpoints" / "last").read_text().strip() == f"{result.steps:06d}"
    assert calls == [result.steps]  # the budget-stopped step is evaluated as the final one
    assert (out / "loss_curve.png").exists()
    with pytest.raises(ValueError, match="time_budget_min"):
        cfg(tiny_dataset, out, time_budget_min=0)


def test_schedule_over_budget_finishes_the_decay(tiny_dataset, tmp_path):
    def lrs(out):
        return [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines() if "lr" in json.loads(line)]

    kw = dict(steps=1_000_000, save_every=1_000_000, scheduler="cosine", warmup_steps=2, time_budget_min=2.0 / 60)
    plain = train(cfg(tiny_dataset, tmp_path / "plain", **kw))
    assert plain.steps < 1_000_000 and lrs(tmp_path / "plain")[-1] == pytest.approx(1e-3, rel=1e-3)  # cut mid-schedule
    timed = train(cfg(tiny_dataset, tmp_path / "timed", schedule_over_budget=True, **kw))
    timed_lrs = lrs(tmp_path / "timed")
    assert timed.steps < 1_000_000 and timed_lrs[-1] < 0.02 * 1e-3  # decayed to ~0 within the budget
    assert all(b <= a + 1e-12 for a, b in zip(timed_lrs[2:], timed_lrs[3:]))  # a cosine decay, not a restart
    state = json.loads((tmp_path / "timed" / "checkpoints" / "last").parent.joinpath(
        f"{timed.steps:06d}", "training_state", "training_state.json").read_text())
    assert 2.0 <= state["elapsed_s"] < 30  # the budget (2 s) was spent; a resumed run continues this clock
    with pytest.raises(ValueError, match="schedule_over_budget"):
        cfg(tiny_dataset, tmp_path / "x", schedule_over_budget=True)
