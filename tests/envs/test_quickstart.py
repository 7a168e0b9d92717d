"""`robokit demo`: the whole loop (expert demos -> train -> eval -> report) on a tiny budget."""

from __future__ import annotations

import json

import torch

from robokit.cli import main as cli

TINY_ACT = ["dim_model=16", "n_heads=2", "dim_feedforward=32", "n_encoder_layers=1", "chunk_size=20",
            "n_action_steps=20"]


def test_demo_runs_the_learning_loop_and_writes_a_report(need_aloha, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    assert cli(["demo", "--out", str(out), "--demo-episodes", "2", "--steps", "6", "--train-minutes", "1",
                "--eval-episodes", "1", "--policy-args", *TINY_ACT]) == 0
    report = (out / "report.md").read_text()
    assert "Success rate:" in report and "act on aloha_transfer_cube" in report
    figures = json.loads((out / "report.json").read_text())
    assert figures["demos"]["episodes"] == 2 and figures["train"]["steps"] == 6
    assert figures["eval"]["n_episodes"] == 1
    assert (out / "train" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    video = figures["video"]
    assert video and video.endswith(".mp4")
    import av

    with av.open(video) as container:
        assert container.streams.video[0].frames > 0 or sum(1 for _ in container.decode(video=0)) > 0
    # a second run reuses the demos and replaces the training run
    assert cli(["demo", "--out", str(out), "--steps", "2", "--eval-episodes", "1", "--policy-args", *TINY_ACT]) == 0
    figures = json.loads((out / "report.json").read_text())
    assert "reused" in figures["demos"] and figures["train"]["steps"] == 2
