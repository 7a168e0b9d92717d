"""A policy trained on robokit's own demos deploys on robokit's own sim robot, as a user types it:
`robokit demos` -> `robokit train` (a few steps) -> `robokit run-policy --env ...` against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from robokit.serving.server import PolicyServer, ServeConfig

ROBOKIT = [sys.executable, "-m", "robokit.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
TINY_ACT = ["--policy", "act", "--policy-args", "dim_model=16", "n_heads=2", "dim_feedforward=32", "n_encoder_layers=1",
            "n_decoder_layers=1", "use_vae=false", "chunk_size=10", "n_action_steps=10"]


def robokit(*args, cwd):
    out = subprocess.run([*ROBOKIT, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"robokit {' '.join(args)} failed:\n{out.stderr[-3000:]}"
    return out


def demos_and_train(tmp_path, env, *demo_args):
    robokit("demos", env, "--episodes", "1", "--out", "demos", "--video-codec", "h264", "--max-attempts", "3",
            *demo_args, cwd=tmp_path)
    robokit("train", "--dataset", "demos", *TINY_ACT, "--steps", "2", "--batch-size", "2", "--num-workers", "0",
            "--save-every", "2", "--output-dir", "outputs/train", "--no-plot", cwd=tmp_path)
    return tmp_path / "outputs" / "train"


def test_a_pusht_demos_policy_runs_on_the_sim_robot_through_a_server(tmp_path, monkeypatch):
    pytest.importorskip("gym_pusht")
    from robokit.commands.serving import RunPolicyConfig, run_policy_config
    from robokit.policies import Policy

    demos_and_train(tmp_path, "pusht")
    # the policy needs the env state the sim robot used to leave out (the server rejected the set-up)
    assert "observation.environment_state" in Policy.from_pretrained(tmp_path / "outputs/train").input_features
    monkeypatch.chdir(tmp_path)
    with PolicyServer(ServeConfig(port=0)) as server:
        cfg = RunPolicyConfig(policy="outputs/train/checkpoints/last/pretrained_model", env="pusht",
                              server=f"127.0.0.1:{server.port}", fps=30, max_steps=12, duration_s=60)
        stats = run_policy_config(cfg)
    assert stats.actions_executed == 12 and stats.chunks_received >= 1


def test_a_state_only_transfer_cube_demos_policy_runs_on_the_sim_robot(tmp_path):
    pytest.importorskip("gym_aloha")
    out = demos_and_train(tmp_path, "aloha_transfer_cube", "--cameras", "--full-episodes", "False")
    run = robokit("run-policy", "--env", "aloha_transfer_cube", "--env-cameras", "--local", "--policy", str(out),
                  "--fps", "50", "--max-steps", "12", cwd=tmp_path)
    assert "12 actions" in run.stdout
