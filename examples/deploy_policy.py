"""Load a trained policy (robokit or LeRobot folder, or hub id) and run it in a simulated env.

    .venv/bin/python examples/deploy_policy.py outputs/train_act/checkpoints/002000/pretrained_model aloha_transfer_cube
"""

import sys

import numpy as np
import torch

from robokit.envs import make_single_env
from robokit.policies import Policy

policy_path, env_name = sys.argv[1], sys.argv[2]
policy = Policy.from_pretrained(policy_path, device="cuda" if torch.cuda.is_available() else "cpu")
cameras = tuple(k.removeprefix("observation.images.") for k in policy.image_features)
env = make_single_env(env_name, seed=0, cameras=cameras)


def to_tensors(obs: dict) -> dict:
    out = {}
    for key in policy.input_features:
        value = torch.as_tensor(np.asarray(obs[key]))
        if key in policy.image_features:  # (H, W, C) uint8 -> (C, H, W) float in [0, 1]
            value = value.permute(2, 0, 1).float() / 255.0
        out[key] = value.float().unsqueeze(0)
    return out


obs, _ = env.reset()
policy.reset()
total, done = 0.0, False
while not done:
    action = policy.select_action(to_tensors(obs))[0].cpu().numpy()
    obs, reward, terminated, truncated, info = env.step(action)
    total, done = total + float(reward), terminated or truncated
print(f"episode return {total:.2f}, success {info.get('is_success', terminated)}")
