"""`robokit train` options (named recipes that fill them are in recipes.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Train a policy on an episode dataset."""

    dataset: str = ""
    """Dataset folder or hub repo id."""
    policy: str | None = None
    """Policy type (act, diffusion, smolvla, pi0, pi05, ...); default act, or with --init the checkpoint's type."""
    policy_args: tuple[str, ...] = ()
    """Policy config overrides as key=value (JSON values), e.g. chunk_size=20 down_dims=[64,128]."""
    init: str | None = None
    """Start from a pretrained policy and fine-tune: a save_pretrained folder, a training output or checkpoint
    folder, a LeRobot folder or a hub repo id. Its config is kept (--policy-args override fields); the
    normalization stats are the new dataset's."""
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
    lr_min: float = 0.0
    """The lr the cosine schedule decays to at the last step."""
    betas: tuple[float, float] | None = None
    """AdamW betas (default: the policy's optimizer_betas, else (0.9, 0.999))."""
    grad_clip_norm: float | None = None
    """Clip the gradient norm to this; 0 = no clipping (default: the policy's optimizer_grad_clip_norm, else 10)."""
    ema_decay: float | None = None
    """Keep an exponential moving average of the weights (e.g. 0.999); the exported model uses it."""
    amp: str = "no"
    """Mixed precision: no, bf16 or fp16 (fp16 on CUDA only)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward instead of keeping them (less memory, ~30% more compute); for
    policies that implement set_gradient_checkpointing (the VLAs)."""
    compile: bool = False
    """torch.compile the policy's forward."""
    distributed: str = "ddp"
    """With torchrun: ddp (a full replica per process) or fsdp (parameters, gradients and optimizer state
    sharded over the processes: for models that do not fit as replicas)."""
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
        if self.distributed not in ("ddp", "fsdp"):
            raise ValueError(f"distributed={self.distributed!r}; expected 'ddp' or 'fsdp'")
        if self.grad_clip_norm is not None and self.grad_clip_norm < 0:
            raise ValueError(f"grad_clip_norm={self.grad_clip_norm}; expected >= 0 (0 = no clipping)")
        if self.lr_min < 0:
            raise ValueError(f"lr_min={self.lr_min}; expected >= 0")
        if self.amp not in ("no", "bf16", "fp16"):
            raise ValueError(f"amp={self.amp!r}; expected 'no', 'bf16' or 'fp16'")
        if self.time_budget_min is not None and not self.time_budget_min > 0:
            raise ValueError(f"time_budget_min={self.time_budget_min}; expected > 0 minutes (or None)")
        if self.schedule_over_budget and self.time_budget_min is None:
            raise ValueError("schedule_over_budget=True needs time_budget_min (the budget the schedule spans)")
        for name in ("steps", "batch_size", "grad_accum_steps", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1")

    @classmethod
    def from_recipe(cls, name: str, **overrides) -> "TrainConfig":
        """The named recipe's settings (robokit.training.recipes), then `overrides` on top."""
        from robokit.training.recipes import get_recipe

        recipe = get_recipe(name)
        fields = {"policy": recipe.policy, **recipe.options, **overrides}
        fields["policy_args"] = tuple(recipe.policy_args) + tuple(overrides.get("policy_args", ()))
        return cls(**fields)

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


@dataclass
class TrainResult:
    output_dir: str
    steps: int
    final_loss: float
    losses: list[float] = field(default_factory=list)
    eval_metrics: list[dict] = field(default_factory=list)
    rank: int = 0
    """This process's rank (several processes: only rank 0 reports; every rank's final_loss is the average)."""
