"""The policy interface every model shares: build, forward (loss), act, save and load.

    policy = Policy.build(make_config("act"), dataset.features, dataset.meta.stats)
    loss, logs = policy(batch)                   # raw batch from the dataset, normalized inside
    action = policy.select_action(observation)   # raw observation in, raw action out
    policy.save_pretrained("out/")               # config.json + model.safetensors + normalization.safetensors
    policy.push_to_hub("me/act_pusht", dataset_repo_id="me/pusht")   # the same files + a model card
    policy = Policy.from_pretrained("out/")      # any registered type; LeRobot folders too
    policy = Policy.from_pretrained("outputs/train")   # a training output: its last checkpoint (see resolve_pretrained_dir)

Observations are dicts of tensors keyed by feature name with a batch dimension; images are
float in [0, 1], (B, C, H, W).
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from robokit.policies import onednn
from robokit.policies.config import (
    FeatureType,
    PolicyConfig,
    PolicyFeature,
    get_policy_class,
    policy_features,
)
from robokit.policies.normalize import Normalizer, with_imagenet_stats

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
STATS_NAME = "normalization.safetensors"
FORMAT = "robokit.policy/1"


class Policy(nn.Module):
    """Base class: subclasses set `config_class` and implement `compute_loss` and `_predict_chunk`."""

    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig

    def __init__(
        self,
        config: PolicyConfig,
        input_features: dict[str, PolicyFeature],
        output_features: dict[str, PolicyFeature],
        stats: dict[str, dict] | None = None,
    ):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        if "action" not in output_features:
            raise ValueError(f"{type(self).__name__}: output features {list(output_features)} have no 'action'")
        self.config = config
        self.input_features = dict(input_features)
        self.output_features = dict(output_features)
        modes = {ft: config.normalization_mode(ft) for ft in FeatureType}
        self.normalizer = Normalizer({**self.input_features, **self.output_features}, modes, stats)
        self._action_queue: deque[Tensor] = deque()

    # ----------------------------------------------------------------- features
    @property
    def image_features(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f.type is FeatureType.VISUAL]

    @property
    def state_feature(self) -> PolicyFeature | None:
        return next((f for f in self.input_features.values() if f.type is FeatureType.STATE), None)

    @property
    def env_state_feature(self) -> PolicyFeature | None:
        return next((f for f in self.input_features.values() if f.type is FeatureType.ENV), None)

    @property
    def action_dim(self) -> int:
        return self.output_features["action"].shape[0]

    @property
    def device(self) -> torch.device:
        return next(iter(self.parameters())).device

    @property
    def dtype(self) -> torch.dtype:
        """The network's floating dtype (float32 by default; `policy.to(torch.bfloat16)` for bf16 inference)."""
        return next(iter(self.parameters())).dtype

    def to(self, *args, **kwargs) -> "Policy":
        """`nn.Module.to`, except that a dtype applies to the network only: the normalizer keeps float32
        stats, observations are normalized in float32 and cast to the network's dtype, and actions come
        back float32. `policy.to(torch.bfloat16)` is the bf16 inference mode (train with autocast instead)."""
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"{type(self).__name__}.to: dtype {dtype} is not a floating point type")
        if device is not None or memory_format is not None:
            extra = {} if memory_format is None else {"memory_format": memory_format}
            super().to(device, non_blocking=non_blocking, **extra)
        if dtype is not None:
            for child in self.children():
                if child is not self.normalizer:
                    child.to(dtype)
        return self

    def train(self, mode: bool = True) -> "Policy":
        """`nn.Module.train`; entering training also frees the weight copies of CPU inference (onednn)."""
        if mode:
            onednn.clear_cache(self)
        return super().train(mode)

    @contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode for one prediction, then the previous mode again (keeping the inference copies)."""
        was_training = self.training
        nn.Module.train(self, False)
        try:
            yield
        finally:
            nn.Module.train(self, was_training)

    def _to_network_dtype(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Floating tensors of a normalized batch in the network's dtype (a no-op in float32)."""
        dtype = self.dtype
        return {k: v.to(dtype) if isinstance(v, Tensor) and v.is_floating_point() else v for k, v in batch.items()}

    # ----------------------------------------------------------------- building
    @staticmethod
    def build(config: PolicyConfig, features: dict[str, dict], stats: dict[str, dict] | None = None) -> "Policy":
        """A policy of `config.type` for these dataset/env features and their stats."""
        pf = policy_features(features)
        inputs = {k: v for k, v in pf.items() if v.type is not FeatureType.ACTION}
        outputs = {k: v for k, v in pf.items() if v.type is FeatureType.ACTION}
        if not outputs:
            raise ValueError(f"features {sorted(features)} have no 'action'; a policy needs one to predict")
        if config.use_imagenet_stats:
            cameras = [k for k, v in inputs.items() if v.type is FeatureType.VISUAL]
            if cameras and config.normalization_mode(FeatureType.VISUAL).value == "mean_std":
                stats = with_imagenet_stats(stats, cameras)
        return get_policy_class(config.type)(config, inputs, outputs, stats)

    # ----------------------------------------------------------------- training
    @property
    def observation_delta_indices(self) -> list[int] | None:
        """Frame offsets of the observations a training sample needs (None = the current frame only)."""
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        """Frame offsets of the actions a training sample needs."""
        return [0]

    def delta_timestamps(self, fps: float) -> dict[str, list[float]]:
        """The dataset windows (`RobotDataset(delta_timestamps=...)`) that `forward` expects."""
        out = {"action": [i / fps for i in self.action_delta_indices]}
        if self.observation_delta_indices is not None:
            for key in self.input_features:
                out[key] = [i / fps for i in self.observation_delta_indices]
        return out

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """Loss on a raw (unnormalized) batch from the dataset -> (loss, logs)."""
        return self.compute_loss(self.normalizer(self._to_device(batch)))

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def optimizer_param_groups(self) -> list[dict]:
        """Parameter groups for the optimizer (policies may give the backbone its own lr)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    # ----------------------------------------------------------------- acting
    def reset(self) -> None:
        """Forget queued actions and observation history (call between episodes)."""
        self._action_queue.clear()

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Any], **kwargs) -> Tensor:
        """Raw observation (B, ...) -> raw actions (B, n, action_dim)."""
        obs = self._to_network_dtype(self.normalizer(self._check_observation(observation)))
        return self.normalizer.unnormalize("action", _at_least_float32(self._predict_chunk(obs, **kwargs)))

    def _predict_chunk(self, obs: dict[str, Tensor], **kwargs) -> Tensor:
        raise NotImplementedError

    @property
    def n_action_steps(self) -> int:
        return int(getattr(self.config, "n_action_steps", 1))

    @torch.no_grad()
    def select_action(self, observation: dict[str, Any], **kwargs) -> Tensor:
        """The next action (B, action_dim): a new chunk when the queue of `n_action_steps` is empty."""
        if not self._action_queue:
            chunk = self.predict_action_chunk(observation, **kwargs)[:, : self.n_action_steps]
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = self.device
        return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}

    def _check_observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        obs = {}
        for name, feature in self.input_features.items():
            if name not in observation:
                raise KeyError(
                    f"{type(self).__name__}: observation has no {name!r}; it has {sorted(observation)} "
                    f"and the policy expects {sorted(self.input_features)}"
                )
            value = observation[name]
            if not isinstance(value, Tensor):
                value = torch.as_tensor(value)
            value = value.to(self.device, torch.float32)
            if tuple(value.shape[-len(feature.shape) :]) != feature.shape or value.ndim == len(feature.shape):
                raise ValueError(
                    f"{type(self).__name__}: observation {name!r} has shape {tuple(value.shape)}; "
                    f"expected (batch, [time,] {', '.join(map(str, feature.shape))})"
                )
            obs[name] = value
        return obs

    # ----------------------------------------------------------------- saving
    def config_dict(self) -> dict[str, Any]:
        out = self.config.to_dict()
        out["input_features"] = {k: f.to_json() for k, f in self.input_features.items()}
        out["output_features"] = {k: f.to_json() for k, f in self.output_features.items()}
        out["format"] = FORMAT
        return out

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config.json, model.safetensors and normalization.safetensors into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        weights = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.state_dict().items()}
        save_file(weights, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "robokit": FORMAT})
        save_file(self.normalizer.stats_dict(), str(directory / STATS_NAME), metadata={"robokit": FORMAT})
        return directory

    @staticmethod
    def from_pretrained(
        path_or_repo_id: str | os.PathLike, *, revision: str | None = None, device: str | torch.device = "cpu",
        **config_overrides,
    ) -> "Policy":
        """Load a policy saved by `save_pretrained` (any type) or by LeRobot: a folder, a training output or
        checkpoint folder, `checkpoints/last[/pretrained_model]`, or a hub repo id (`resolve_pretrained_dir`)."""
        directory = resolve_pretrained_dir(path_or_repo_id, revision)
        from robokit.policies import lerobot_compat

        if lerobot_compat.is_lerobot_checkpoint(directory):
            policy = lerobot_compat.load_lerobot_policy(directory, **config_overrides)
            return policy.to(device).eval()
        data = json.loads((directory / CONFIG_NAME).read_text())
        policy_cls = get_policy_class(data.get("type", ""))
        values = policy_cls.config_class.resolve_paths({**data, **config_overrides}, directory)
        config = policy_cls.config_class.from_dict(values)
        inputs = {k: PolicyFeature.from_json(k, v) for k, v in data["input_features"].items()}
        outputs = {k: PolicyFeature.from_json(k, v) for k, v in data["output_features"].items()}
        stats_path = directory / STATS_NAME
        stats = Normalizer.stats_from_flat(load_file(str(stats_path))) if stats_path.exists() else None
        policy = policy_cls(config, inputs, outputs, stats)
        policy.load_weights(load_file(str(directory / WEIGHTS_NAME)), source=str(directory / WEIGHTS_NAME))
        return policy.to(device).eval()

    def push_to_hub(self, repo_id: str, *, dataset_repo_id: str | None = None, steps: int | None = None,
                    private: bool = False, revision: str | None = None, token: str | None = None) -> str:
        """Upload this policy (the save_pretrained files + a model card) to the hub; returns the repo URL.
        See robokit.policies.hub (and `robokit push-policy` for a saved or trained one)."""
        import tempfile

        from robokit.policies.hub import push_policy

        with tempfile.TemporaryDirectory(prefix="robokit-policy-") as tmp:
            self.save_pretrained(tmp)
            return push_policy(tmp, repo_id, dataset_repo_id=dataset_repo_id, steps=steps, private=private,
                               revision=revision, token=token)

    def load_weights(self, state_dict: dict[str, Tensor], source: str = "state dict") -> None:
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{type(self).__name__}: weights in {source} do not match the model: "
                f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
            )


def _at_least_float32(x: Tensor) -> Tensor:
    """bf16/fp16 network outputs become float32 (float64 stays)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


POLICY_PATH_FORMS = (
    "a folder written by save_pretrained (config.json + model.safetensors)",
    "a `robokit train` output folder (its last checkpoint)",
    "a checkpoint folder (OUTPUT/checkpoints/<step>, its pretrained_model)",
    "OUTPUT/checkpoints/last or OUTPUT/checkpoints/last/pretrained_model",
    "a hub repo id (owner/name)",
)


def resolve_pretrained_dir(path_or_repo_id: str | os.PathLike, revision: str | None = None) -> Path:
    """The folder holding a policy's config.json, for every form a user may give (POLICY_PATH_FORMS):
    a save_pretrained folder as is, a training output folder or a checkpoint folder down to its
    pretrained_model, `checkpoints/last` (a text file naming the step) followed, or a hub repo id
    downloaded with huggingface_hub. The one path rule of `eval`, `serve`, `run-policy`, `record`."""
    text = str(path_or_repo_id)
    path = _follow_last_pointer(Path(text).expanduser())
    if path.exists():
        return _pretrained_dir_in(path, text)
    if text.startswith((".", "/", "~")) or text.count("/") != 1 or "\\" in text:
        raise FileNotFoundError(f"policy folder {text!r} does not exist; expected {_forms()}")
    return _download_policy(text, revision)


def _forms() -> str:
    return "one of: " + "; ".join(POLICY_PATH_FORMS)


def _follow_last_pointer(path: Path) -> Path:
    """`.../checkpoints/last[/rest]` where `last` is the training's text file -> `.../checkpoints/<step>[/rest]`."""
    parts = path.parts
    for i, part in enumerate(parts):
        prefix = Path(*parts[: i + 1])
        if part == "last" and prefix.is_file():
            step = prefix.read_text().strip()
            if not step or "/" in step or not (prefix.parent / step).is_dir():
                raise FileNotFoundError(f"{prefix} names checkpoint {step!r}, which is not a folder in {prefix.parent}")
            return Path(prefix.parent / step, *parts[i + 1 :])
    return path


def _pretrained_dir_in(path: Path, given: str) -> Path:
    """Down from a training output or checkpoint folder to the folder with config.json."""
    if path.is_file():
        if path.name in (CONFIG_NAME, WEIGHTS_NAME):
            return path.parent
        raise FileNotFoundError(f"policy path {given!r} is a file; expected {_forms()}")
    if (path / CONFIG_NAME).is_file():
        return path
    if (path / "pretrained_model").is_dir():
        return _pretrained_dir_in(path / "pretrained_model", given)
    checkpoints = path / "checkpoints"
    if checkpoints.is_dir():
        last = checkpoints / "last"
        if last.exists():  # robokit writes a text file; LeRobot a symlink to the step folder
            return _pretrained_dir_in(_follow_last_pointer(last), given)
        steps = sorted((p for p in checkpoints.iterdir() if p.name.isdigit() and p.is_dir()), key=lambda p: int(p.name))
        if steps:
            return _pretrained_dir_in(steps[-1], given)
        raise FileNotFoundError(f"training output {given!r} has no checkpoint yet (checkpoints/ is empty)")
    raise FileNotFoundError(f"policy folder {given!r} holds no {CONFIG_NAME}, pretrained_model/ or checkpoints/; "
                            f"expected {_forms()}")


def _download_policy(repo_id: str, revision: str | None) -> Path:
    """A hub repo's snapshot; offline or unknown repos raise one-line ConnectionError / FileNotFoundError."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    logger.info("downloading policy %s from the hub", repo_id)
    not_local = f"no local folder {repo_id!r} either"
    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except HFValidationError as err:
        raise FileNotFoundError(f"policy {repo_id!r} is neither a local folder nor a valid hub repo id ({err}); "
                                f"expected {_forms()}") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"policy {repo_id!r}: no such hub repo (or it is private: log in with "
                                f"`huggingface-cli login`), and {not_local}") from None
    except RevisionNotFoundError:
        raise FileNotFoundError(f"policy {repo_id!r}: the hub repo has no revision {revision!r}") from None
    except LocalEntryNotFoundError:  # offline (HF_HUB_OFFLINE or no connection) and not in the cache
        raise ConnectionError(f"policy {repo_id!r}: cannot reach the hub (offline) and it is not in the local cache; "
                              f"{not_local}") from None
    except OSError as err:  # requests' connection errors and timeouts are OSErrors
        raise ConnectionError(f"policy {repo_id!r}: cannot download it from the hub ({type(err).__name__}: {err}); "
                              f"{not_local}") from None
