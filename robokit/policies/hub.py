"""Publish a trained policy on the Hugging Face hub, with the model card a user expects.

    push_policy("outputs/train", "me/act_pusht", dataset_repo_id="me/pusht")     # -> the repo URL
    stage_policy("outputs/train", "out/act_pusht", "me/act_pusht")               # the same files, written locally
    robokit push-policy outputs/train me/act_pusht --dataset me/pusht

The repo holds the `save_pretrained` files (config.json, model.safetensors,
normalization.safetensors) and README.md: YAML front matter (library robokit, tags robotics +
the policy type, the dataset, pipeline robotics) and a body with the training steps, the input
and output features and how to load the policy. The policy may be given in any form
`Policy.from_pretrained` takes (a training output folder pushes its last checkpoint). Only
safetensors and JSON are uploaded; nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from robokit.data.hub import push_errors
from robokit.policies.policy import CONFIG_NAME, STATS_NAME, WEIGHTS_NAME, resolve_pretrained_dir

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
FILES = (CONFIG_NAME, WEIGHTS_NAME, STATS_NAME)


def training_steps(policy_dir: Path) -> int | None:
    """The step of a training checkpoint (`<step>/pretrained_model` beside `<step>/training_state`), else None."""
    state = Path(policy_dir).parent / "training_state" / "training_state.json"
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["step"])
        except (ValueError, KeyError, TypeError):
            return None
    return int(policy_dir.parent.name) if policy_dir.name == "pretrained_model" and policy_dir.parent.name.isdigit() else None


def _yaml_list(key: str, values: list[str]) -> list[str]:
    return [f"{key}:", *(f"- {json.dumps(v)}" for v in values)] if values else []


def model_card(config: dict, repo_id: str, dataset_repo_id: str | None = None, steps: int | None = None,
               license: str = "apache-2.0") -> str:
    """README.md for a policy repo, from its config.json (as `save_pretrained` writes it)."""
    policy_type = str(config.get("type", "policy"))
    tags = ["robotics", "robokit", policy_type]
    front = ["---", "library_name: robokit", f"license: {license}", "pipeline_tag: robotics",
             *_yaml_list("tags", tags), *_yaml_list("datasets", [dataset_repo_id] if dataset_repo_id else []),
             f"model_name: {json.dumps(policy_type)}", "---"]
    trained_on = (f"[{dataset_repo_id}](https://huggingface.co/datasets/{dataset_repo_id})"
                  if dataset_repo_id else "a robokit / LeRobot v3.0 dataset")
    trained_for = f" for {steps:,} steps" if steps is not None else ""
    rows = ["| feature | kind | shape |", "| --- | --- | --- |"]
    for kind, key in (("input", "input_features"), ("output", "output_features")):
        for name, feature in config.get(key, {}).items():
            rows.append(f"| `{name}` | {kind} ({str(feature.get('type', '')).lower()}) | {tuple(feature.get('shape', ()))} |")
    settings = {k: config[k] for k in ("chunk_size", "n_action_steps", "n_obs_steps", "horizon", "dim_model",
                                       "vision_backbone", "optimizer_lr") if k in config}
    body = [
        f"# {policy_type} policy: {repo_id}",
        "",
        f"A policy of type `{policy_type}` trained with robokit on {trained_on}{trained_for}.",
        "",
        "## Inputs and outputs",
        "",
        *rows,
        "",
        "Images are float in [0, 1], (batch, channels, height, width); the policy normalizes its inputs "
        "and unnormalizes its actions with the statistics in `normalization.safetensors`.",
        "",
        "## Use",
        "",
        "```python",
        "from robokit.policies import Policy",
        "",
        f'policy = Policy.from_pretrained("{repo_id}")',
        "action = policy.select_action(observation)   # a dict of tensors keyed by the feature names above",
        "```",
        "",
        "```bash",
        f"robokit eval --policy {repo_id} --env ENV --episodes 10",
        f"robokit serve --port 8080 & robokit run-policy --policy {repo_id} --server 127.0.0.1:8080 ...",
        "```",
        "",
        "## Training",
        "",
        f"- steps: {steps if steps is not None else 'unknown'}",
        f"- dataset: {dataset_repo_id or 'not given'}",
        *(f"- {k}: {v}" for k, v in settings.items()),
        "",
        "The full configuration is `config.json`.",
    ]
    return "\n".join(front + [""] + body) + "\n"


def stage_policy(policy: str | Path, out_dir: str | Path, repo_id: str, dataset_repo_id: str | None = None,
                 steps: int | None = None, license: str = "apache-2.0") -> Path:
    """Write the repo's files (the policy's and README.md) into `out_dir`; returns it."""
    source = resolve_pretrained_dir(policy)
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"push-policy: {source} has no {' or '.join(missing)}; expected a folder written "
                                "by save_pretrained or a robokit training output")
    config = json.loads((source / CONFIG_NAME).read_text())
    if "format" not in config:
        raise ValueError(f"push-policy: {source / CONFIG_NAME} is not a robokit policy config (no 'format'); "
                         "load it with Policy.from_pretrained and save_pretrained it first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    steps = training_steps(source) if steps is None else steps
    (out / CARD_NAME).write_text(model_card(config, repo_id, dataset_repo_id, steps, license))
    return out


def push_policy(policy: str | Path, repo_id: str, *, dataset_repo_id: str | None = None, steps: int | None = None,
                private: bool = False, revision: str | None = None, token: str | None = None,
                license: str = "apache-2.0", commit_message: str = "Upload policy with robokit") -> str:
    """Upload a policy (any `from_pretrained` form) with its model card; returns the repo URL.
    Offline or unreachable hub: ConnectionError; missing or read-only token: PermissionError (one line each)."""
    from huggingface_hub import HfApi, constants

    with tempfile.TemporaryDirectory(prefix="robokit-push-") as tmp:
        folder = stage_policy(policy, Path(tmp) / "repo", repo_id, dataset_repo_id, steps, license)
        if constants.HF_HUB_OFFLINE:  # some huggingface_hub versions check it on downloads only: never try
            raise ConnectionError(f"push-policy {repo_id!r}: the hub is offline here (HF_HUB_OFFLINE is set); "
                                  "unset it to upload")
        api = HfApi(token=token)
        with push_errors(f"push-policy {repo_id!r}"):
            url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, repo_type="model", branch=revision, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", revision=revision,
                              commit_message=commit_message)
    logger.info("pushed %s to %s", policy, url)
    return str(url)
