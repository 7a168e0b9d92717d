"""Train ACT on a robokit/LeRobot dataset with the Python API, then run the trained policy on a frame.

    .venv/bin/python examples/train_act.py --dataset path/to/dataset --steps 2000
    .venv/bin/python examples/train_act.py --dataset path/to/dataset --steps 2000 --resume   # continue a killed run

Without cameras ACT needs `observation.environment_state` (e.g. the ALOHA sim's object poses);
with cameras it uses a ResNet-18 per image (pass --pretrained resnet18.safetensors for ImageNet weights).
"""

import argparse

import torch

from robokit.data import RobotDataset
from robokit.policies import Policy, make_config
from robokit.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="dataset folder or hub repo id")
    parser.add_argument("--output-dir", default="outputs/train_act")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--pretrained", default=None, help="ImageNet ResNet-18 weights (.safetensors)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)

    # 1. The policy is built from the dataset's features and stats: no hard-coded shapes.
    probe = RobotDataset(args.dataset)
    config = make_config(
        "act",
        chunk_size=args.chunk_size,
        n_action_steps=args.chunk_size,
        dim_model=256,  # a CPU-sized model; the paper's defaults are dim_model=512, dim_feedforward=3200
        dim_feedforward=1024,
        pretrained_backbone_weights=args.pretrained,
    )
    policy = Policy.build(config, probe.features, probe.meta.stats)
    print(f"ACT with {sum(p.numel() for p in policy.parameters()) / 1e6:.1f}M parameters, "
          f"inputs {sorted(policy.input_features)}")

    # 2. The dataset returns the windows the policy trains on (here: the next chunk_size actions).
    dataset = RobotDataset(args.dataset, delta_timestamps=policy.delta_timestamps(probe.fps))

    # 3. Train: AdamW, constant lr, gradient clipping, checkpoints every 500 steps (resumable).
    cfg = TrainConfig(
        dataset=args.dataset,
        policy="act",
        output_dir=args.output_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=1e-4,
        save_every=500,
        num_workers=2,
        resume=args.resume,
    )
    result = train(cfg, dataset=dataset, policy=None if args.resume else policy)
    print(f"final loss {result.final_loss:.4f}; loss curve in {args.output_dir}/loss_curve.png")

    # 4. Load the last checkpoint and predict from a dataset frame (raw observation in, raw action out).
    last = open(f"{args.output_dir}/checkpoints/last").read().strip()
    trained = Policy.from_pretrained(f"{args.output_dir}/checkpoints/{last}/pretrained_model")
    frame = probe[0]
    observation = {k: frame[k].unsqueeze(0) for k in trained.input_features}
    action = trained.select_action(observation)
    print("predicted action:", [round(x, 3) for x in action[0].tolist()])
    print("recorded action: ", [round(x, 3) for x in frame["action"].tolist()])


if __name__ == "__main__":
    main()
