"""The training loop: AdamW, lr schedule, clipping, accumulation, EMA, AMP, checkpoints, exact resume, DDP.

    from robokit.training import TrainConfig, train
    result = train(TrainConfig(dataset="data/pusht", policy="diffusion", steps=5000))

Several processes: launch with torchrun (`torchrun --nproc_per_node 2 -m robokit.cli train ...`);
each process reads its shard of every pass over the data; gradients are averaged by DDP, or with
`--distributed fsdp` the model is sharded (see distributed.py). Rank 0 logs, with losses averaged over
the processes, and writes the checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader

from robokit.policies import Policy, make_config
from robokit.progress import progress
from robokit.training import distributed
from robokit.training.checkpoint import last_checkpoint, load_training_state, save_checkpoint, set_rng_state
from robokit.training.config import TrainConfig, TrainResult
from robokit.training.ema import EMA
from robokit.training.init_from import policy_from_pretrained
from robokit.training.protocols import enable_gradient_checkpointing
from robokit.training.sampler import ResumableSampler, training_indices

logger = logging.getLogger(__name__)

EvalFn = Callable[[Policy, int], dict]


def lr_lambda(kind: str, warmup: int, total: int, floor: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the base lr at a step: linear warmup, then constant or cosine decay to `floor`."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        position = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * position))

    return f


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_policy(cfg: TrainConfig, dataset) -> Policy:
    """A new policy for the dataset's features and stats: from cfg.init's weights and config, or from scratch."""
    if cfg.init:
        return policy_from_pretrained(cfg.init, dataset.features, dataset.meta.stats, cfg.policy,
                                      cfg.policy_overrides())
    config = make_config(cfg.policy or "act", **cfg.policy_overrides())
    return Policy.build(config, dataset.features, dataset.meta.stats)


def make_dataset(cfg: TrainConfig, policy_for_windows: Policy | None = None):
    from robokit.data import RobotDataset

    probe = RobotDataset(cfg.dataset)
    policy = policy_for_windows or build_policy(cfg, probe)
    # Camera frames travel as uint8 (4x less to copy between processes and to the device) and
    # become floats in [0, 1] on the device, in prepare_batch.
    dataset = RobotDataset(cfg.dataset, delta_timestamps=policy.delta_timestamps(probe.fps), return_uint8=True)
    return dataset, policy


def prepare_batch(batch: dict, device: torch.device, camera_keys) -> dict:
    """Move a batch to `device`; uint8 camera frames become float32 in [0, 1] there. Everything that is
    not a tensor passes unchanged: the frames' `task` strings reach `policy.forward` as a list[str]."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key in camera_keys and value.dtype == torch.uint8:
                value = value.to(torch.float32).mul_(1 / 255)
        out[key] = value
    return out


class MetricsLog:
    """metrics.jsonl (+ optional TensorBoard / wandb) on the main process."""

    def __init__(self, cfg: TrainConfig, output_dir: Path, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.path = output_dir / "metrics.jsonl"
        self.tb = self.wandb = None
        if not enabled:
            return
        if resume_step and self.path.exists():  # drop lines written after the checkpoint we resume from
            lines = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in lines))
        elif not resume_step:
            self.path.write_text("")
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(output_dir / "tensorboard"))
        if cfg.wandb:
            import wandb

            self.wandb = wandb.init(project="robokit", config=vars(cfg), dir=str(output_dir), resume="allow")

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        step = record["step"]
        for key, value in record.items():
            if key != "step" and isinstance(value, int | float):
                if self.tb is not None:
                    self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(record, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _default_eval_fn(cfg: TrainConfig) -> EvalFn | None:
    if not cfg.env:
        return None

    def evaluate(policy: Policy, step: int) -> dict:
        from robokit.envs import evaluate as env_evaluate

        info = env_evaluate(policy, cfg.env, n_episodes=cfg.eval_episodes, seed=cfg.seed)
        return {**info["aggregated"], "seed": info["seed"]}  # pc_success, avg_sum_reward, ... (logged as eval/*)

    return evaluate


def train(
    cfg: TrainConfig, dataset=None, policy: Policy | None = None, eval_fn: EvalFn | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train `policy` (built from cfg + dataset features/stats when None) on `dataset` (opened from cfg.dataset when None).

    `eval_fn(policy, step) -> metrics` runs every cfg.eval_every steps and at the end (default: the env of cfg.env).
    `stop_after` ends the run early after that step (a simulated interruption for tests).
    """
    d = distributed.init(cfg.distributed)
    main = d.main
    eval_fn = eval_fn or _default_eval_fn(cfg)
    _check_fsdp_options(cfg, d, eval_fn)
    device = _device(cfg.device)
    if device.type == "cuda" and d.world > 1:
        device = torch.device("cuda", d.local_rank)
    output_dir = Path(cfg.output_dir)
    resume_from = last_checkpoint(output_dir) if cfg.resume else None
    if cfg.resume and resume_from is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {output_dir / 'checkpoints'} (no 'last' pointer)")
    if not cfg.resume and main and (output_dir / "checkpoints").exists():
        raise FileExistsError(f"{output_dir} already has checkpoints; pass --resume to continue or pick another output_dir")

    torch.manual_seed(cfg.seed)
    if resume_from is not None:
        policy = Policy.from_pretrained(resume_from / "pretrained_model")
        raw_weights = resume_from / "training_state" / "model.safetensors"
        if raw_weights.exists():  # EMA runs: the exported model holds the averaged weights
            from safetensors.torch import load_file

            policy.load_weights(load_file(str(raw_weights)), source=str(raw_weights))
        if dataset is None:
            dataset, _ = make_dataset(cfg, policy)
    elif dataset is None:
        dataset, built = make_dataset(cfg, policy)
        policy = policy or built
    elif policy is None:
        policy = build_policy(cfg, dataset)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(policy)
    policy.to(device).train()
    output_dir.mkdir(parents=True, exist_ok=True)
    model = distributed.wrap(policy, d, device)  # before the optimizer: FSDP replaces the parameters by shards
    forward = torch.compile(model) if cfg.compile else model

    pcfg = policy.config
    lr = cfg.lr if cfg.lr is not None else getattr(pcfg, "optimizer_lr", 1e-4)
    weight_decay = cfg.weight_decay if cfg.weight_decay is not None else getattr(pcfg, "optimizer_weight_decay", 0.0)
    clip = cfg.grad_clip_norm if cfg.grad_clip_norm is not None else getattr(pcfg, "optimizer_grad_clip_norm", 10.0)
    # fused: one kernel over all parameters (CPU and CUDA); the per-parameter loop took 2.3 s of a 5.3 s
    # Diffusion Policy step on CPU, fused ~3x less (benchmarks/bench_policy_latency.py --cases diff_train).
    # Only on default-layout parameters: fused AdamW goes wrong when a parameter and its resumed state differ in
    # layout; and not on FSDP's sharded parameters (DTensors), which take the per-tensor path.
    fused = device.type in ("cpu", "cuda") and not d.fsdp and all(p.is_contiguous() for p in policy.parameters())
    optimizer = torch.optim.AdamW(policy.optimizer_param_groups(), lr=lr, weight_decay=weight_decay, fused=fused,
                                  **({"betas": tuple(cfg.betas)} if cfg.betas else {}))
    schedule = lr_lambda(cfg.scheduler, cfg.warmup_steps, cfg.steps, floor=cfg.lr_min / lr if lr else 0.0)
    budget = None
    if cfg.time_budget_min:
        budget = TimeBudget(cfg.time_budget_min, d.world, device)
    if cfg.schedule_over_budget:
        schedule = _over_budget(schedule, cfg.steps, budget)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    ema = EMA(policy, cfg.ema_decay) if cfg.ema_decay else None
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16" and device.type == "cuda")
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' on CPU")

    step, meta = 0, None
    if resume_from is not None:
        meta = load_training_state(resume_from, optimizer, scheduler, ema, scaler,
                                   load_named=lambda state: distributed.load_full_optimizer_state(policy, optimizer, state))
        step = meta["step"]
        if budget is not None:
            budget.elapsed = meta.get("elapsed_s", 0.0)
        logger.info("resuming from %s at step %d", resume_from, step)

    micro = cfg.batch_size
    sampler = ResumableSampler(
        training_indices(dataset, getattr(pcfg, "drop_n_last_frames", 0)), seed=cfg.seed, rank=d.rank,
        world_size=d.world, start=step * cfg.grad_accum_steps * micro,
    )
    loader = DataLoader(
        dataset, batch_size=micro, sampler=sampler, num_workers=cfg.num_workers, drop_last=True,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed + step),
        persistent_workers=cfg.num_workers > 0,
    )
    batches = iter(loader)
    camera_keys = set(dataset.meta.camera_keys)
    if meta is not None:  # after the loader drew its worker seeds: the RNG continues where it stopped
        set_rng_state(meta["rng_tensors"], meta["rng"])

    log = MetricsLog(cfg, output_dir, main, step)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    losses, evals = [], []
    last_eval_step = None
    bar = progress(total=cfg.steps, initial=step, disable=not main, desc="train", unit="step")
    window_start, window_samples = time.perf_counter(), 0
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    final = cfg.steps  # the step treated as the last one (checkpoint, evaluation, plot)
    if budget is not None:
        budget.begin()
    while step < end:
        # DDP: the gradients are views of its buckets and must stay allocated (zeroed, not freed)
        optimizer.zero_grad(set_to_none=d.world == 1 or d.fsdp)
        total_loss, logs = 0.0, {}
        for micro_step in range(cfg.grad_accum_steps):
            batch = prepare_batch(next(batches), device, camera_keys)
            sync = micro_step == cfg.grad_accum_steps - 1
            with _gradient_sync(model, d, sync), torch.autocast(device.type, dtype=autocast_dtype,
                                                                 enabled=autocast_dtype is not None):
                loss, logs = forward(batch)
            scaler.scale(loss / cfg.grad_accum_steps).backward()
            total_loss += loss.item() / cfg.grad_accum_steps
        total_loss = distributed.mean(total_loss, d, device)  # the loss of the global batch
        scaler.unscale_(optimizer)
        grad_norm = distributed.full_value(
            torch.nn.utils.clip_grad_norm_(policy.parameters(), clip if clip else float("inf"))
        ).item()
        scaler.step(optimizer)
        scaler.update()
        if budget is not None:
            budget.tick()  # before the scheduler: a schedule over the budget reads the clock
        scheduler.step()
        if ema is not None:
            ema.update(policy)
        step += 1
        losses.append(total_loss)
        window_samples += micro * cfg.grad_accum_steps * d.world
        if step % cfg.log_every == 0 or step == end:
            elapsed = time.perf_counter() - window_start
            logs = distributed.mean_logs(logs, d, device)
            record = {"step": step, "loss": total_loss, "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                      "samples_per_s": window_samples / max(elapsed, 1e-9),
                      **{k: v for k, v in logs.items() if k != "loss"}}
            log.write(record)
            bar.set_postfix(loss=f"{total_loss:.4f}", lr=f"{record['lr']:.2e}", sps=f"{record['samples_per_s']:.1f}")
            window_start, window_samples = time.perf_counter(), 0
        bar.update(1)
        if budget is not None and step < end and budget.spent:
            logger.info("time budget of %.1f min reached at step %d of %d: stopping", cfg.time_budget_min, step, cfg.steps)
            end = final = step
        if eval_fn is not None and cfg.eval_every and step % cfg.eval_every == 0 and main:
            evals.append(_evaluate(eval_fn, policy, ema, step, log))
            last_eval_step = step
        if step % cfg.save_every == 0 or step == final:
            sampler_state = {"sampler": {"seed": cfg.seed, "consumed_per_rank": step * cfg.grad_accum_steps * micro,
                                         "world_size": d.world}}
            if budget is not None:
                sampler_state["elapsed_s"] = budget.elapsed
            # FSDP: every process takes part in gathering the full weights and optimizer state; rank 0 writes
            weights = distributed.full_state_dict(policy, d) if d.fsdp else None
            optimizer_state = distributed.full_optimizer_state(policy, optimizer, d) if d.fsdp else None
            ema_to_save = ema.gathered() if d.fsdp and ema is not None else ema
            if main:
                save_checkpoint(output_dir, step, policy, optimizer, scheduler, sampler_state, ema_to_save, scaler,
                                weights=weights, optimizer_state=optimizer_state)
            distributed.barrier(d)
    bar.close()
    if eval_fn is not None and main and step == final and last_eval_step != step:
        evals.append(_evaluate(eval_fn, policy, ema, step, log))
    log.close()
    if main and cfg.plot and step == final:
        from robokit.training.plot import plot_loss_curve

        plot_loss_curve(output_dir / "metrics.jsonl", output_dir / "loss_curve.png")
    final_loss = losses[-1] if losses else float("nan")
    if main:
        # debug: `robokit train` prints the run's one summary line itself (TrainResult carries the figures)
        logger.debug("trained %d steps; final loss %.4f; outputs in %s", step, final_loss, output_dir)
    distributed.shutdown(d)
    return TrainResult(str(output_dir), step, final_loss, losses, evals, rank=d.rank)


def _check_fsdp_options(cfg: TrainConfig, d: distributed.Dist, eval_fn: EvalFn | None) -> None:
    """What an FSDP run cannot do yet, said before anything is built."""
    if not d.fsdp:
        return
    for name, bad in (("amp='fp16'", cfg.amp == "fp16"),
                      ("evaluation during training (env / eval_fn)", eval_fn is not None)):
        if bad:
            raise ValueError(f"distributed='fsdp' does not support {name} yet; train without it (bf16 instead of "
                             "fp16; evaluate the saved checkpoint with robokit eval)")


def _gradient_sync(model, d: distributed.Dist, sync: bool):
    """Gradient accumulation: no gradient communication on the micro-steps before the last one."""
    if d.world <= 1:
        return _nullcontext()
    if d.fsdp:
        model.set_requires_gradient_sync(sync)
        return _nullcontext()
    return _nullcontext() if sync else model.no_sync()


class TimeBudget:
    """The run's training clock against `time_budget_min`; with several processes rank 0's clock is everyone's
    (one broadcast per step), so that all stop at the same step and a schedule over the budget agrees."""

    def __init__(self, minutes: float, world: int, device: torch.device):
        self.seconds, self.world, self.device = 60.0 * minutes, world, device
        self.elapsed = 0.0  # seconds trained before `begin` (a resumed run's) and since
        self.start = time.monotonic()

    def begin(self) -> None:
        """Start (or continue) the clock at the first training step."""
        self.start = time.monotonic() - self.elapsed

    def tick(self) -> None:
        elapsed = time.monotonic() - self.start
        if self.world > 1:
            shared = torch.tensor([elapsed], dtype=torch.float64, device=self.device)
            torch.distributed.broadcast(shared, src=0)
            elapsed = float(shared.item())
        self.elapsed = elapsed

    @property
    def fraction(self) -> float:
        return self.elapsed / self.seconds

    @property
    def spent(self) -> bool:
        return self.elapsed >= self.seconds


def _over_budget(schedule: Callable[[int], float], steps: int, budget: TimeBudget) -> Callable[[int], float]:
    """`schedule` at the larger of the step and the budget's share of the steps."""
    return lambda step: schedule(max(step, int(steps * budget.fraction)))


def _evaluate(eval_fn: EvalFn, policy: Policy, ema: EMA | None, step: int, log: MetricsLog) -> dict:
    backup = None
    if ema is not None:  # evaluate the averaged weights
        backup = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        policy.load_state_dict({k: ema.shadow.get(k, v).to(v.dtype) for k, v in backup.items()})
    policy.eval()
    policy.reset()
    try:
        metrics = eval_fn(policy, step)
    finally:
        policy.train()
        if backup is not None:
            policy.load_state_dict(backup)
    record = {"step": step, **{f"eval/{k}": v for k, v in metrics.items() if isinstance(v, int | float)}}
    log.write(record)
    return metrics


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
