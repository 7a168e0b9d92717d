"""`robokit push-policy`: publish a trained policy on the Hugging Face hub with its model card.

    robokit push-policy outputs/train me/act_pusht --dataset me/pusht
    robokit push-policy outputs/train me/act_pusht --local-dir staged/   # write the repo's files, upload nothing
"""

from __future__ import annotations

from dataclasses import dataclass

from robokit.cli import parse


@dataclass
class PushPolicyConfig:
    """Upload a policy (config.json, model.safetensors, normalization.safetensors) and a README.md model card."""

    policy: str
    """A training output folder (its last checkpoint), a checkpoint or save_pretrained folder, or a hub repo id."""
    repo_id: str
    """Hub model repo to create or update, e.g. me/act_pusht."""
    dataset: str | None = None
    """Hub repo id of the training dataset, named in the model card."""
    steps: int | None = None
    """Training steps shown in the model card (default: read from the checkpoint)."""
    private: bool = False
    """Create the repo private."""
    revision: str | None = None
    """Branch to upload to (created if missing; default: main)."""
    token: str | None = None
    """Hub token with write access (default: `huggingface-cli login` / HF_TOKEN)."""
    license: str = "apache-2.0"
    """License in the model card's front matter."""
    local_dir: str | None = None
    """Write the repo's files into this folder instead of uploading (to look at the card first)."""


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and not argv[0].startswith("-") and not argv[1].startswith("-"):
        argv = ["--policy", argv[0], "--repo-id", argv[1], *argv[2:]]  # `push-policy POLICY REPO_ID ...`
    cfg = parse(PushPolicyConfig, argv, prog="robokit push-policy",
                description="usage: robokit push-policy POLICY REPO_ID [--dataset DATASET_REPO_ID] [--local-dir DIR] ...")
    from robokit.policies import hub

    # a wrong path, an offline or unauthorized push: robokit.cli prints the error in one line
    if cfg.local_dir:
        out = hub.stage_policy(cfg.policy, cfg.local_dir, cfg.repo_id, cfg.dataset, cfg.steps, cfg.license)
        print(f"wrote {cfg.repo_id}'s files to {out} (not uploaded)")
        return 0
    url = hub.push_policy(cfg.policy, cfg.repo_id, dataset_repo_id=cfg.dataset, steps=cfg.steps,
                          private=cfg.private, revision=cfg.revision, token=cfg.token, license=cfg.license)
    print(f"pushed {cfg.policy} to {url}")
    return 0
