"""Load policy folders written by LeRobot's `save_pretrained` (0.4.x: processors + normalizer files).

A LeRobot folder has `config.json` (type, input/output features with types, hyperparameters),
`model.safetensors` (possibly shipped as `model.safetensors.xz` with a `.sha256`), and
`policy_preprocessor.json` / `policy_postprocessor.json` whose normalizer steps point at
safetensors files of stats keyed `"<feature>.<stat>"`. The configs use the same field names as
robokit's; parameter names are the same for ACT and mapped for Diffusion Policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import lzma
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from robokit.data.atomic import atomic_write
from robokit.policies.config import PolicyFeature, get_policy_class

logger = logging.getLogger(__name__)

# LeRobot config keys that describe its training set-up, not the model.
_IGNORED_KEYS = {
    "type", "input_features", "output_features", "device", "use_amp", "use_peft", "push_to_hub", "repo_id",
    "private", "tags", "license", "pretrained_path", "compile_model", "compile_mode", "scheduler_name",
    "scheduler_warmup_steps", "optimizer_betas", "optimizer_eps", "drop_n_last_frames", "rtc_config",
}
_DIFFUSION_BACKBONE = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def is_lerobot_checkpoint(directory: Path) -> bool:
    config = directory / "config.json"
    if (directory / "policy_preprocessor.json").exists():
        return True
    if not config.exists():
        return False
    data = json.loads(config.read_text())
    return "format" not in data and "input_features" in data


def cache_dir() -> Path:
    return Path(os.environ.get("ROBOKIT_CACHE", Path.home() / ".cache" / "robokit"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_file(directory: Path) -> Path:
    """model.safetensors, decompressed from model.safetensors.xz into the cache (sha256-checked) if needed."""
    plain = directory / "model.safetensors"
    if plain.exists():
        return plain
    packed = directory / "model.safetensors.xz"
    if not packed.exists():
        raise FileNotFoundError(f"{directory}: no model.safetensors (or model.safetensors.xz)")
    sha_file = directory / "model.safetensors.sha256"
    expected = sha_file.read_text().split()[0] if sha_file.exists() else None
    target = cache_dir() / "lerobot" / f"{expected or _sha256(packed)}.safetensors"
    if target.exists() and (expected is None or _sha256(target) == expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    def decompress(tmp: Path) -> None:  # atomic_write: mode from the umask (not 0600), renamed when complete
        with lzma.open(packed) as src, open(tmp, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)
        got = _sha256(tmp)
        if expected is not None and got != expected:
            raise ValueError(f"{packed}: decompressed sha256 {got} != {expected} in {sha_file.name}")

    atomic_write(target, decompress, suffix=".part")
    return target


def _normalizer_stats(directory: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Stats of the normalizer / unnormalizer steps, as {feature: {stat: tensor}}."""
    stats: dict[str, dict[str, torch.Tensor]] = {}
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        path = directory / name
        if not path.exists():
            continue
        for step in json.loads(path.read_text()).get("steps", []):
            if "normalizer" not in step.get("registry_name", "") or not step.get("state_file"):
                continue
            for key, tensor in load_file(str(directory / step["state_file"])).items():
                feature, _, stat = key.rpartition(".")
                stats.setdefault(feature, {}).setdefault(stat, tensor)
    return stats


def convert_state_dict(policy_type: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LeRobot parameter names -> robokit's."""
    if policy_type == "smolvla":  # robokit names the two halves of `vlm_with_expert` directly
        return {re.sub(r"^model\.vlm_with_expert\.(vlm|lm_expert)\.",
                       lambda m: "model.vlm." if m.group(1) == "vlm" else "model.expert.", k): v
                for k, v in state.items()}
    if policy_type != "diffusion":
        return dict(state)
    out = {}
    for key, value in state.items():
        key = re.sub(r"^diffusion\.", "model.", key)
        key = re.sub(
            r"(rgb_encoder(?:\.\d+)?\.backbone)\.(\d)\.",
            lambda m: f"{m.group(1)}.{_DIFFUSION_BACKBONE[m.group(2)]}.",
            key,
        )
        out[key] = value
    return out


def load_lerobot_policy(directory: Path, **config_overrides):
    data = json.loads((directory / "config.json").read_text())
    policy_type = data.get("type", "")
    policy_cls = get_policy_class(policy_type)
    config_cls = policy_cls.config_class
    fields = {f.name for f in dataclasses.fields(config_cls)}
    values = {}
    for key, value in data.items():
        if key in fields:
            values[key] = value
        elif key not in _IGNORED_KEYS:
            logger.warning("LeRobot %s config: field %r=%r is not used by robokit", policy_type, key, value)
    if "normalization_mapping" in values:
        values["normalization_mapping"] = {k: v.lower() for k, v in values["normalization_mapping"].items()}
    values["use_imagenet_stats"] = False  # the processor stats already hold what LeRobot used
    if "load_vlm_weights" in fields:
        values["load_vlm_weights"] = False  # model.safetensors holds the whole model, backbone included
    values.update(config_overrides)
    config = config_cls.from_dict(config_cls.resolve_paths(values, directory))
    inputs = {k: PolicyFeature.from_json(k, v) for k, v in data["input_features"].items()}
    outputs = {k: PolicyFeature.from_json(k, v) for k, v in data["output_features"].items()}
    policy = policy_cls(config, inputs, outputs, _normalizer_stats(directory))
    path = weights_file(directory)
    policy.load_weights(convert_state_dict(policy_type, load_file(str(path))), source=str(path))
    return policy
