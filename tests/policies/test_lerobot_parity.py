"""robokit loads LeRobot 0.4.4 checkpoints and reproduces LeRobot's outputs on its reference inputs.

Tolerance: 1e-5 in the model's (normalized) output space. In raw action units the bound is
1e-5 x the normalization scale (std for ACT, half the min-max range for Diffusion): these
checkpoints have action scales of ~20-43, and the references carry float32 rounding of their own
(~4e-7 normalized, measured by running robokit in float64).
"""

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robokit.policies import Policy
from robokit.policies.attention import Dropout

FIXTURES = Path(os.environ["ROBOKIT_LEROBOT_FIXTURES"]) / "policies"
pytestmark = pytest.mark.lerobot_fixtures
TOL = 1e-5


def close(got, want, tol=TOL):
    diff = (got - want).abs().max().item()
    assert diff <= tol, f"max abs diff {diff:.3g} > {tol:.1g}"


@pytest.fixture(scope="module")
def act():
    # torch's dropout draws: LeRobot's seeded training outputs include nn.MultiheadAttention's attention dropout
    policy = Policy.from_pretrained(FIXTURES / "act_tiny", dropout_masks="torch")
    return policy, load_file(str(FIXTURES / "act_tiny.reference.safetensors"))


@pytest.fixture(scope="module")
def diffusion():
    return (Policy.from_pretrained(FIXTURES / "diffusion_tiny"),
            load_file(str(FIXTURES / "diffusion_tiny.reference.safetensors")))


def _raw(ref, prefix):
    return {k.removeprefix(prefix): v for k, v in ref.items() if k.startswith(prefix)}


def test_act_preprocessing_and_inference(act):
    policy, ref = act
    raw = _raw(ref, "input.raw.")
    for key, value in policy.normalizer(raw).items():
        close(value, ref[f"input.normalized.{key}"], 0)
    scale = policy.normalizer.stat("action", "std").max().item()
    chunk = policy.predict_action_chunk(raw)
    close(policy.normalizer.normalize("action", chunk), ref["output.predict_action_chunk.normalized"])
    close(chunk, ref["output.predict_action_chunk.unnormalized"], TOL * scale)
    policy.reset()
    first, second = policy.select_action(raw), policy.select_action(raw)
    close(policy.normalizer.normalize("action", first), ref["output.select_action.normalized"])
    close(first, ref["output.select_action.unnormalized"], TOL * scale)
    close(policy.normalizer.normalize("action", second), ref["output.select_action_call2.normalized"])


def test_act_training_outputs(act):
    policy, ref = act
    policy.train()
    for m in policy.modules():
        if isinstance(m, (torch.nn.Dropout, Dropout)):
            m.eval()
    batch = _raw(ref, "input.normalized.")
    batch["action"] = policy.normalizer.normalize("action", ref["train.input.action.raw"])
    close(batch["action"], ref["train.input.action.normalized"], 1e-6)
    batch["action_is_pad"] = ref["train.input.action_is_pad"]
    torch.manual_seed(777)
    actions_hat, mu, log_sigma_x2 = policy.model(batch, policy.image_features)
    close(mu, ref["train.output.vae_mu"])
    close(log_sigma_x2, ref["train.output.vae_log_sigma_x2"])
    close(actions_hat, ref["train.output.actions_hat_seeded"])
    torch.manual_seed(777)
    loss, logs = policy.compute_loss(batch)
    assert logs["kld_loss"] == pytest.approx(ref["train.output.kld_loss"].item(), abs=TOL)
    assert logs["l1_loss"] == pytest.approx(ref["train.output.l1_loss_seeded"].item(), abs=TOL)
    close(loss.detach().reshape(1), ref["train.output.loss_seeded"], TOL * 10)
    policy.eval()


def _history(policy, ref):
    raw = {t: _raw(ref, f"input.raw.{t}.") for t in ("t-1", "t")}
    for t in raw:
        for key, value in policy.normalizer(raw[t]).items():
            close(value, ref[f"input.normalized.{t}.{key}"], 0)
    return raw, {k: torch.stack([raw["t-1"][k], raw["t"][k]], dim=1) for k in raw["t"]}


def test_diffusion_ddpm_sampling_with_injected_noise(diffusion):
    policy, ref = diffusion
    raw, history = _history(policy, ref)
    norm_history = policy.normalizer(history)
    close(norm_history["observation.state"], ref["input.history.observation.state"], 0)
    close(policy.model.global_condition(norm_history, policy.image_features), ref["intermediate.global_cond"])
    assert policy.model.scheduler.timesteps(policy.config.inference_steps) == ref["intermediate.scheduler_timesteps"].tolist()
    unet_outputs = []
    hook = policy.model.unet.register_forward_hook(lambda m, i, out: unet_outputs.append(out))
    try:
        step_noise = [ref[f"output.generate_actions.ddpm_variance_noise.{i}"] for i in range(4)]
        actions = policy.predict_action_chunk(history, noise=ref["input.noise"], step_noise=step_noise)
        for i, out in enumerate(unet_outputs):
            close(out, ref[f"intermediate.generate_actions.unet_out.{i}"])
        close(unet_outputs[0], ref["intermediate.unet_out_first_step"])
        half_range = ((policy.normalizer.stat("action", "max") - policy.normalizer.stat("action", "min")) / 2).max().item()
        close(policy.normalizer.normalize("action", actions), ref["output.generate_actions.normalized"])
        close(actions, ref["output.generate_actions.unnormalized"], TOL * half_range)

        unet_outputs.clear()
        policy.reset()
        step_noise = [ref[f"output.select_action.ddpm_variance_noise.{i}"] for i in range(4)]
        first = policy.select_action(raw["t-1"], noise=ref["input.noise"], step_noise=step_noise)
        for i, out in enumerate(unet_outputs):
            close(out, ref[f"intermediate.select_action.unet_out.{i}"])
        close(policy.normalizer.normalize("action", first), ref["output.select_action.normalized"])
        close(first, ref["output.select_action.unnormalized"], TOL * half_range)
        remaining = torch.stack(list(policy._action_queue), dim=1)
        close(policy.normalizer.normalize("action", remaining), ref["output.select_action.remaining_queue.normalized"])
    finally:
        hook.remove()


def test_diffusion_ddim_sampling():
    policy = Policy.from_pretrained(FIXTURES / "diffusion_tiny", noise_scheduler_type="DDIM")
    ref = load_file(str(FIXTURES / "diffusion_tiny.reference.safetensors"))
    _, history = _history(policy, ref)
    actions = policy.predict_action_chunk(history, noise=ref["input.noise"])
    close(policy.normalizer.normalize("action", actions), ref["output.generate_actions_ddim.normalized"])


def test_diffusion_training_loss(diffusion):
    policy, ref = diffusion
    _, history = _history(policy, ref)
    batch = policy.normalizer(history)
    batch["action"] = ref["train.input.action.normalized"]
    policy.train()
    torch.manual_seed(777)
    loss, _ = policy.compute_loss(batch)
    policy.eval()
    close(loss.detach().reshape(1), ref["train.output.loss_seeded"])


def test_corrupted_weights_are_rejected(tmp_path):
    import shutil

    folder = tmp_path / "act"
    shutil.copytree(FIXTURES / "act_tiny", folder)
    (folder / "model.safetensors.sha256").write_text("0" * 64 + "  model.safetensors\n")
    import os

    os.environ["ROBOKIT_CACHE"] = str(tmp_path / "cache")
    try:
        with pytest.raises(ValueError, match="sha256"):
            Policy.from_pretrained(folder)
    finally:
        del os.environ["ROBOKIT_CACHE"]
