"""Camera frames travel as uint8 and become floats in [0, 1] on the device; other tensors are untouched."""

import torch

from robokit.training.trainer import prepare_batch


def test_prepare_batch_scales_only_camera_frames():
    frames = torch.tensor([[0, 51, 255]], dtype=torch.uint8).reshape(1, 1, 1, 3)
    batch = {"observation.images.front": frames, "flags": torch.tensor([7], dtype=torch.uint8),
             "action": torch.ones(1, 2), "task": ["t"]}
    out = prepare_batch(batch, torch.device("cpu"), {"observation.images.front"})
    assert out["observation.images.front"].dtype == torch.float32
    assert torch.allclose(out["observation.images.front"].flatten(), torch.tensor([0.0, 0.2, 1.0]))
    assert out["flags"].dtype == torch.uint8 and out["flags"].item() == 7
    assert torch.equal(out["action"], batch["action"]) and out["task"] == ["t"]
