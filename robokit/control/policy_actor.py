"""A trained policy as the action source of a control loop (the robot runs the policy).

    actor = PolicyActor.from_pretrained("outputs/train", robot, task="pick the cube")
    action = actor(robot.get_observation())       # {"shoulder_pan.pos": ..., ...}

Observations become the policy's batch exactly as a dataset frame would (`observation.state`
float32 (1, n), `observation.images.<cam>` float (1, 3, H, W) in [0, 1], `task`), so a policy
trained on a recording runs unchanged on the robot that recorded it. torch loads only here.
"""

from __future__ import annotations

from typing import Any

from robokit.control.dataset_features import build_dataset_frame, frame_to_action, hw_to_dataset_features
from robokit.robots.robot import Robot


class PolicyActor:
    def __init__(self, policy, robot: Robot, task: str = ""):
        self.policy = policy
        self.task = task
        self.features = {
            **hw_to_dataset_features(robot.observation_features, "observation"),
            **hw_to_dataset_features(robot.action_features, "action"),
        }
        missing = sorted(set(policy.input_features) - set(self.features))
        if missing:
            raise ValueError(
                f"the policy needs {missing}, which {robot!r} does not provide (it has {sorted(self.features)})"
            )

    @classmethod
    def from_pretrained(cls, path: str, robot: Robot, task: str = "", device: str = "cpu") -> "PolicyActor":
        from robokit.policies import Policy

        return cls(Policy.from_pretrained(path, device=device), robot, task)

    def reset(self) -> None:
        """Call between episodes: drops the queued action chunk."""
        self.policy.reset()

    def __call__(self, observation: dict[str, Any]) -> dict[str, float]:
        import torch

        frame = build_dataset_frame(self.features, observation, "observation")
        batch: dict[str, Any] = {}
        for key, value in frame.items():
            tensor = torch.from_numpy(value)
            if value.ndim == 3:  # (H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1], as the dataset returns
                tensor = tensor.permute(2, 0, 1).float().div_(255.0)
            batch[key] = tensor.unsqueeze(0)
        batch["task"] = [self.task]
        action = self.policy.select_action(batch)[0].detach().cpu().numpy()
        return frame_to_action(self.features, action)
