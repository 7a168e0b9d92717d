"""LeRobot 0.4.4's side of bench_policy_latency.py: one case, run in the reference LeRobot venv.

    /tmp/venv-lerobot/bin/python benchmarks/lerobot_policy.py --case act1 [--repeats 10 --warmup 2 --threads 2]

The same shapes and configs as robokit's cases (ACT defaults with 480x640 cameras + 14-dim state;
Diffusion defaults with an 84x84 crop of a 96x96 camera + 2-dim state, as robokit's default config),
random init (no pretrained backbone, nothing downloaded), inputs drawn from the same torch seed.
Inference: LeRobot's pre-processor (normalize), the model, the post-processor (unnormalize), as
robokit's predict_action_chunk does all three. Training: pre-processor, forward, backward, and the
optimizer that `lerobot-train` builds from the policy's preset. Prints one RESULT line (seconds).
"""

from __future__ import annotations

import argparse
import resource
import statistics

import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
from side_by_side import emit, timed


def features(cams: int, hw: tuple[int, int], state: int, action: int):
    inputs = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, *hw)) for i in range(cams)}
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (state,))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (action,))}


def stats(inputs: dict, outputs: dict) -> dict:
    out = {}
    for k, v in {**inputs, **outputs}.items():
        shape = (3, 1, 1) if v.type is FeatureType.VISUAL else tuple(v.shape)
        out[k] = {"mean": torch.zeros(shape), "std": torch.ones(shape), "min": -torch.ones(shape), "max": torch.ones(shape)}
    return out


def observation(inputs: dict, batch: int, steps: int | None = None) -> dict:
    lead = (batch,) if steps is None else (batch, steps)
    return {k: torch.rand(lead + tuple(v.shape)) for k, v in inputs.items()}


def build(config):
    policy = get_policy_class(config.type)(config)
    pre, post = make_pre_post_processors(config, dataset_stats=stats(config.input_features, config.output_features))
    return policy, pre, post


def act(cams: int, train: bool, args) -> list[float]:
    inputs, outputs = features(cams, (480, 640), 14, 14)
    config = ACTConfig(input_features=inputs, output_features=outputs, pretrained_backbone_weights=None, device="cpu")
    policy, pre, post = build(config)
    if not train:
        policy.eval()
        obs = observation(inputs, 1)
        with torch.inference_mode():
            return timed(lambda: post(policy.predict_action_chunk(pre(obs))), args.repeats, args.warmup)
    batch = observation(inputs, 8)
    batch["action"] = torch.randn(8, config.chunk_size, 14)
    batch["action_is_pad"] = torch.zeros(8, config.chunk_size, dtype=torch.bool)
    return train_steps(policy, pre, batch, args)


def diffusion(steps: int | None, args) -> list[float]:
    inputs, outputs = features(1, (96, 96), 2, 2)
    config = DiffusionConfig(input_features=inputs, output_features=outputs, crop_shape=(84, 84),
                             num_inference_steps=steps, device="cpu")
    policy, pre, post = build(config)
    if steps is not None:
        policy.eval()
        obs = observation(inputs, 1, steps=config.n_obs_steps)

        def chunk():  # predict_action_chunk after its observation queue: the stacked (B, n_obs, ...) batch
            batch = pre(obs)
            batch["observation.images"] = torch.stack([batch[k] for k in config.image_features], dim=-4)
            return post(policy.diffusion.generate_actions(batch))

        with torch.inference_mode():
            repeats = max(2, args.repeats // 5) if steps == 100 else args.repeats
            return timed(chunk, repeats, 1 if steps == 100 else args.warmup)
    batch = observation(inputs, 8, steps=config.n_obs_steps)
    batch["action"] = torch.randn(8, config.horizon, 2)
    batch["action_is_pad"] = torch.zeros(8, config.horizon, dtype=torch.bool)
    return train_steps(policy, pre, batch, args)


def train_steps(policy, pre, batch: dict, args) -> list[float]:
    policy.train()
    optimizer = policy.config.get_optimizer_preset().build(policy.get_optim_params())

    def step():
        loss, _ = policy.forward(pre(dict(batch)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return timed(step, max(2, args.repeats // 4), 1)


CASES = {
    "act1": lambda a: act(1, False, a),
    "act2": lambda a: act(2, False, a),
    "diff10": lambda a: diffusion(10, a),
    "diff100": lambda a: diffusion(100, a),
    "act1_train": lambda a: act(1, True, a),
    "diff_train": lambda a: diffusion(None, a),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", required=True, choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    times = CASES[args.case](args)
    med = statistics.median(times)
    p90 = sorted(times)[max(0, round(0.9 * len(times)) - 1)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"LeRobot 0.4.4 {args.case:10s} median {med * 1e3:9.1f} ms p90 {p90 * 1e3:9.1f} ms  peak RSS {peak_mb:6.0f} MB",
          flush=True)
    emit({"median": med, "p90": p90, "n": len(times), "peak_rss_mb": peak_mb})


if __name__ == "__main__":
    main()
