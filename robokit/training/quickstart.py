"""The whole learning loop on an embedded default: expert demos in simulation -> train -> evaluate -> report.

This is what `robokit demo` runs: no hardware and no downloads. It writes, under `out`:

    demos/          the expert's demonstrations (a RobotDataset)
    train/          checkpoints, metrics.jsonl and loss_curve.png
    eval/           eval_info.json and a rollout video
    report.md       success rate, losses, timings and the commands to go further
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Per env: the policy and settings of the CPU evidence runs in docs/policies.md (state-only inputs).
# `action_noise` records DART demos (a drifting offset on the executed joints, the expert's action
# as the label): on transfer-cube it took a 12-minute ACT from 44% to 86% success.
DEFAULTS: dict[str, dict] = {
    "aloha_transfer_cube": dict(
        policy="act", batch_size=32, lr=4e-4, action_noise=0.01, noise_correlation=0.95,
        policy_args=("dim_model=64", "n_heads=4", "dim_feedforward=256", "n_encoder_layers=2", "use_vae=false",
                     "chunk_size=100", "n_action_steps=100"),
    ),
    "pusht": dict(
        policy="diffusion", batch_size=32, lr=3e-4, ema_decay=0.995,
        policy_args=("down_dims=[64,128,256]", "crop_shape=null", "noise_scheduler_type=DDIM", "num_inference_steps=10"),
    ),
}


VIDEO_SIZE = (240, 320)
"""(height, width) of the rollout video: a state-only policy reads no camera, so this sets only the video."""


@dataclass
class QuickstartConfig:
    """Make expert demos in a simulated env, train a state-only policy for a few minutes, evaluate it, report."""

    env: str = "aloha_transfer_cube"
    """Simulated env: aloha_transfer_cube or pusht."""
    out: Path = Path("outputs/demo")
    """Folder for demos/, train/, eval/ and report.md; a later run reuses demos/ and replaces the rest."""
    demo_episodes: int = 50
    """Expert demonstrations to record."""
    train_minutes: float = 5.0
    """Training time budget in minutes."""
    steps: int = 3000
    """Optimizer steps at most; the lr schedule spans the time budget or the steps, whichever ends first."""
    eval_episodes: int = 10
    """Evaluation episodes (seeds disjoint from the demos')."""
    seed: int = 0
    """Seed of the demos; training uses seed + 1000 and evaluation starts at seed + 100000."""
    device: str = "auto"
    """Torch device for training: cpu, cuda or auto."""
    policy_args: tuple[str, ...] = ()
    """Extra policy config overrides as key=value (appended to the env's defaults)."""

    def __post_init__(self) -> None:
        if self.env not in DEFAULTS:
            raise ValueError(f"env={self.env!r}; expected one of {sorted(DEFAULTS)}")
        for name in ("demo_episodes", "steps", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1")
        if not self.train_minutes > 0:
            raise ValueError(f"train_minutes={self.train_minutes}; expected > 0")


def run_quickstart(cfg: QuickstartConfig) -> dict:
    """Run demos -> train -> eval and write report.md; returns the report's figures."""
    from robokit.envs.demos import record_demos
    from robokit.envs.evaluation import evaluate
    from robokit.training.config import TrainConfig
    from robokit.training.trainer import train

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    defaults = DEFAULTS[cfg.env]
    figures: dict = {"env": cfg.env, "policy": defaults["policy"], "config": {k: str(v) for k, v in asdict(cfg).items()}}

    demos_dir = out / "demos"
    if (demos_dir / "meta" / "info.json").exists():
        print(f"[1/3] demos: reusing {demos_dir}")
        figures["demos"] = {"reused": str(demos_dir)}
    else:
        noise = f", DART action noise {defaults['action_noise']:g}" if defaults.get("action_noise") else ""
        print(f"[1/3] demos: {cfg.demo_episodes} expert episodes of {cfg.env} (state only{noise}) -> {demos_dir}")
        summary = record_demos(cfg.env, cfg.demo_episodes, demos_dir, seed=cfg.seed, cameras=(),
                               action_noise=defaults.get("action_noise", 0.0),
                               noise_correlation=defaults.get("noise_correlation", 0.9))
        print("      " + summary.line())
        figures["demos"] = {"episodes": summary.saved_episodes, "frames": summary.frames,
                            "expert_success_rate": summary.success_rate, "seconds": round(summary.seconds, 1)}

    for stale in ("train", "eval"):
        if (out / stale).exists():
            logger.info("replacing the previous run's %s", out / stale)
            shutil.rmtree(out / stale)
    print(f"[2/3] train: {defaults['policy']} for up to {cfg.train_minutes:g} min ({cfg.steps} steps) -> {out / 'train'}")
    train_cfg = TrainConfig(
        dataset=str(demos_dir), policy=defaults["policy"],
        policy_args=tuple(defaults["policy_args"]) + tuple(cfg.policy_args),
        output_dir=str(out / "train"), steps=cfg.steps, batch_size=defaults["batch_size"], lr=defaults["lr"],
        scheduler="cosine", warmup_steps=min(200, cfg.steps // 10), num_workers=0, device=cfg.device,
        seed=cfg.seed + 1000, save_every=cfg.steps, log_every=10, time_budget_min=cfg.train_minutes,
        schedule_over_budget=True,  # a slower machine takes fewer steps but still finishes the lr decay
        ema_decay=defaults.get("ema_decay"),
    )
    start = time.perf_counter()
    result = train(train_cfg)
    train_s = time.perf_counter() - start
    figures["train"] = {"steps": result.steps, "seconds": round(train_s, 1), "final_loss": result.final_loss,
                        "first_loss": result.losses[0] if result.losses else None}

    print(f"[3/3] eval: {cfg.eval_episodes} episodes of {cfg.env} -> {out / 'eval'}")
    from robokit.policies import Policy
    from robokit.training.checkpoint import last_checkpoint

    policy = Policy.from_pretrained(last_checkpoint(out / "train") / "pretrained_model")
    info = evaluate(policy, cfg.env, n_episodes=cfg.eval_episodes, seed=cfg.seed + 100_000,
                    videos_dir=out / "eval" / "videos", max_videos=1, image_size=VIDEO_SIZE)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    (out / "eval" / "eval_info.json").write_text(json.dumps(info, indent=2))
    figures["eval"] = {k: info["aggregated"][k] for k in ("pc_success", "avg_max_reward", "n_episodes", "eval_s")}
    figures["video"] = info["video_paths"][0] if info["video_paths"] else None
    figures["loss_curve"] = str(out / "train" / "loss_curve.png")

    report = render_report(figures, out)
    (out / "report.md").write_text(report)
    (out / "report.json").write_text(json.dumps(figures, indent=2))
    print(report)
    return figures


def render_report(f: dict, out: Path) -> str:
    ev, tr = f["eval"], f["train"]
    demos = f["demos"]
    demo_line = (f"reused `{demos['reused']}`" if "reused" in demos else
                 f"{demos['episodes']} episodes, {demos['frames']} frames, expert success "
                 f"{100 * demos['expert_success_rate']:.0f}%, {demos['seconds']} s")
    first = f"{tr['first_loss']:.4f} -> " if tr["first_loss"] is not None else ""
    return "\n".join([
        f"# robokit demo: {f['policy']} on {f['env']}",
        "",
        f"- **Success rate: {ev['pc_success']:.0f}%** over {ev['n_episodes']} evaluation episodes "
        f"(average max reward {ev['avg_max_reward']:.2f}; {ev['eval_s']:.0f} s)",
        f"- Demonstrations: {demo_line}",
        f"- Training: {tr['steps']} steps in {tr['seconds']:.0f} s, loss {first}{tr['final_loss']:.4f}",
        f"- Loss curve: `{f['loss_curve']}`",
        f"- Rollout video: `{f['video']}`",
        "",
        "A few minutes on a CPU teaches the policy part of the task; longer training (`robokit train "
        f"--dataset {out / 'demos'} --policy {f['policy']} --steps ...`) and evaluation "
        f"(`robokit eval --policy {out / 'train'} --env {f['env']} --episodes 50`) go further: see docs/policies.md.",
        "",
    ])
