"""Training checkpoints as safetensors + JSON (nothing is pickled):

    <output_dir>/checkpoints/<step:06d>/pretrained_model/   the policy (save_pretrained), EMA weights if on
    <output_dir>/checkpoints/<step:06d>/training_state/     optimizer, scheduler, RNG states, step, sampler
    <output_dir>/checkpoints/last                           a text file naming the latest step folder
"""

from __future__ import annotations

import json
import os
import random
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LAST = "last"


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state -> safetensors tensors + JSON. Parameters are keyed by index (one process, DDP) or
    by name (FSDP's full optimizer state)."""
    tensors, scalars = {}, {}
    for param_id, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{param_id}/{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int | str, dict] = {}
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        param_id, _, key = flat.rpartition("/")
        state.setdefault(int(param_id) if param_id.isdigit() else param_id, {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    np_state = np.random.get_state()
    meta = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


@contextmanager
def _state_dict_is(module: torch.nn.Module, weights: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Inside the block `module.state_dict()` returns `weights` (FSDP: the full tensors gathered from the
    shards), so that the policy's own save_pretrained, with whatever files it adds, writes them."""
    if weights is None:
        yield
        return

    def hook(module, state_dict, prefix, local_metadata):
        if prefix:
            return
        missing = [k for k in state_dict if k not in weights]
        if missing:
            raise KeyError(f"the gathered weights lack {missing[:5]}")
        for key in list(state_dict):
            state_dict[key] = weights[key]

    handle = module.register_state_dict_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def save_checkpoint(
    output_dir: Path, step: int, policy, optimizer, scheduler, extra: dict, ema=None, scaler=None,
    weights: dict[str, torch.Tensor] | None = None, optimizer_state: dict | None = None,
) -> Path:
    """Write checkpoint `step` and point `last` at it. `weights` and `optimizer_state` replace the policy's and
    the optimizer's own state dicts (an FSDP run passes the full ones it gathered)."""
    root = Path(output_dir) / "checkpoints"
    folder = root / f"{step:06d}"
    tmp = root / f".{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    state_dir = tmp / "training_state"
    state_dir.mkdir(parents=True)
    with _state_dict_is(policy, weights):
        policy.save_pretrained(tmp / "pretrained_model")
        if ema is not None:  # pretrained_model gets the EMA weights; training resumes from the raw ones
            save_file(ema.state_dict(), str(state_dir / "ema.safetensors"))
            raw = {k: v.detach().cpu().contiguous().clone() for k, v in policy.state_dict().items()}
            save_file(raw, str(state_dir / "model.safetensors"))
            ema.export(policy, tmp / "pretrained_model")
    opt_tensors, opt_meta = _flatten_optimizer(optimizer_state if optimizer_state is not None else optimizer.state_dict())
    save_file(opt_tensors, str(state_dir / "optimizer.safetensors"))
    rng_tensors, rng_meta = rng_state()
    save_file(rng_tensors, str(state_dir / "rng_state.safetensors"))
    meta = {
        "step": step,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict(),
        "rng": rng_meta,
        "grad_scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        **extra,
    }
    (state_dir / "training_state.json").write_text(json.dumps(meta, indent=1, default=float))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    pointer = root / LAST
    pointer_tmp = root / ".last.tmp"
    pointer_tmp.write_text(folder.name + "\n")
    os.replace(pointer_tmp, pointer)
    return folder


def last_checkpoint(output_dir: Path) -> Path | None:
    pointer = Path(output_dir) / "checkpoints" / LAST
    if not pointer.exists():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not folder.is_dir():
        raise FileNotFoundError(f"{pointer} names {folder.name}, which does not exist")
    return folder


def load_training_state(folder: Path, optimizer, scheduler, ema=None, scaler=None,
                        load_named: Callable[[dict], None] | None = None) -> dict:
    """Restore optimizer, scheduler, EMA and the grad scaler; return the JSON metadata (step, sampler, rng).
    An optimizer state keyed by parameter name (an FSDP run's) goes through `load_named`."""
    state_dir = Path(folder) / "training_state"
    meta = json.loads((state_dir / "training_state.json").read_text())
    optimizer_state = _unflatten_optimizer(load_file(str(state_dir / "optimizer.safetensors")), meta["optimizer"])
    if any(isinstance(k, str) for k in optimizer_state["state"]):
        if load_named is None:
            raise ValueError(f"{state_dir}: the optimizer state is keyed by parameter name; it needs load_named")
        load_named(optimizer_state)
    else:
        optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(meta["scheduler"])
    if ema is not None:
        ema.load_state_dict(load_file(str(state_dir / "ema.safetensors")))
    if scaler is not None and meta.get("grad_scaler"):
        scaler.load_state_dict(meta["grad_scaler"])
    meta["rng_tensors"] = load_file(str(state_dir / "rng_state.safetensors"))
    return meta
