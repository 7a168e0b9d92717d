"""`robokit train` options, and named recipes (full-scale configs as in the papers)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Train a policy on an episode dataset."""

    dataset: str = ""
    """Dataset folder or hub repo id."""
    policy: str = "act"
    """Policy type (act, diffusion, ...)."""
    policy_args: tuple[str, ...] = ()
    """Policy config overrides as key=value (JSON values), e.g. chunk_size=20 down_dims=[64,128]."""
    recipe: str | None = None
    """A named recipe (see RECIPES) that sets policy, policy_args and training options."""
    output_dir: str = "outputs/train"
    """Where checkpoints, metrics.jsonl and loss_curve.png go."""
    steps: int = 10_000
    """Optimizer steps."""
    batch_size: int = 8
    """Samples per step and process (before gradient accumulation)."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step."""
    lr: float | None = None
    """Learning rate (default: the policy's optimizer_lr)."""
    weight_decay: float | None = None
    """AdamW weight decay (default: the policy's)."""
    scheduler: str = "constant"
    """Learning-rate schedule: constant or cosine (with warmup)."""
    warmup_steps: int = 0
    """Linear warmup steps."""
    grad_clip_norm: float | None = 10.0
    """Clip the gradient norm to this (None = no clipping)."""
    ema_decay: float | None = None
    """Keep an exponential moving average of the weights (e.g. 0.999); the exported model uses it."""
    amp: str = "no"
    """Mixed precision: no, bf16 or fp16 (fp16 on CUDA only)."""
    compile: bool = False
    """torch.compile the policy's forward."""
    device: str = "auto"
    """cpu, cuda, cuda:1, ... or auto."""
    num_workers: int = 2
    """DataLoader worker processes."""
    seed: int = 1000
    """Seed of the model init, the data order and every random draw."""
    save_every: int = 1000
    """Checkpoint every N steps (and at the end)."""
    log_every: int = 10
    """Write metrics every N steps."""
    resume: bool = False
    """Continue the run in output_dir from its last checkpoint."""
    time_budget_min: float | None = None
    """Stop after this many minutes of training (counted across resumes): the last step is checkpointed (and
    evaluated) as the final one. The schedule still spans `steps` unless schedule_over_budget is set."""
    schedule_over_budget: bool = False
    """With time_budget_min: the lr schedule's position is the larger of step/steps and elapsed/budget, so a run
    the budget stops early still completes its warmup and cosine decay. The lr then depends on the machine's
    speed, so such a run is not step-for-step reproducible."""
    env: str | None = None
    """Evaluate in this simulated env every eval_every steps (robokit.envs)."""
    eval_every: int = 0
    """Evaluation period in steps (0 = only at the end when env is set)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    tensorboard: bool = False
    """Also log to TensorBoard (needs the `train` extra)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs wandb installed and logged in)."""
    plot: bool = True
    """Write loss_curve.png at the end (needs matplotlib)."""

    def __post_init__(self) -> None:
        if self.scheduler not in ("constant", "cosine"):
            raise ValueError(f"scheduler={self.scheduler!r}; expected 'constant' or 'cosine'")
        if self.amp not in ("no", "bf16", "fp16"):
            raise ValueError(f"amp={self.amp!r}; expected 'no', 'bf16' or 'fp16'")
        if self.time_budget_min is not None and not self.time_budget_min > 0:
            raise ValueError(f"time_budget_min={self.time_budget_min}; expected > 0 minutes (or None)")
        if self.schedule_over_budget and self.time_budget_min is None:
            raise ValueError("schedule_over_budget=True needs time_budget_min (the budget the schedule spans)")
        for name in ("steps", "batch_size", "grad_accum_steps", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1")

    def policy_overrides(self) -> dict:
        out = {}
        for item in self.policy_args:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"policy_args item {item!r}; expected key=value")
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError:
                out[key] = value  # a bare string
        return out


# Full-scale recipes (image-based, as in the papers), ready for a GPU.
RECIPES: dict[str, dict] = {
    "act_aloha_transfer_cube": dict(
        policy="act", steps=100_000, batch_size=8, scheduler="constant", grad_clip_norm=10.0,
        policy_args=("chunk_size=100", "n_action_steps=100"),
    ),
    "diffusion_pusht": dict(
        policy="diffusion", steps=200_000, batch_size=64, scheduler="cosine", warmup_steps=500,
        grad_clip_norm=10.0, ema_decay=None, policy_args=("crop_shape=[84,84]", "num_inference_steps=100"),
    ),
    # CPU-scale, state-only variants for the evidence runs.
    "diffusion_pusht_state": dict(
        policy="diffusion", steps=20_000, batch_size=64, scheduler="cosine", warmup_steps=500,
        policy_args=("down_dims=[128,256,512]", "crop_shape=null", "num_inference_steps=10"),
    ),
    "act_aloha_state": dict(
        policy="act", steps=20_000, batch_size=16, lr=1e-4,
        policy_args=("dim_model=256", "dim_feedforward=1024", "chunk_size=50", "n_action_steps=50"),
    ),
}


def apply_recipe(cfg: TrainConfig) -> TrainConfig:
    """Fill fields from cfg.recipe; explicit policy_args are appended (they win)."""
    if cfg.recipe is None:
        return cfg
    if cfg.recipe not in RECIPES:
        import difflib

        close = difflib.get_close_matches(cfg.recipe, RECIPES, n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown recipe {cfg.recipe!r}; expected one of {sorted(RECIPES)}.{hint}")
    recipe = dict(RECIPES[cfg.recipe])
    defaults = TrainConfig()
    for key, value in recipe.items():
        if key == "policy_args":
            cfg.policy_args = tuple(value) + tuple(cfg.policy_args)
        elif getattr(cfg, key) == getattr(defaults, key):  # only fields the user left at default
            setattr(cfg, key, value)
    return cfg


@dataclass
class TrainResult:
    output_dir: str
    steps: int
    final_loss: float
    losses: list[float] = field(default_factory=list)
    eval_metrics: list[dict] = field(default_factory=list)
