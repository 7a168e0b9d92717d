import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from robokit.policies.resnet import FrozenBatchNorm2d, ResNet18, load_resnet_weights


def test_parameter_names_are_torchvision_names():
    names = set(ResNet18(include_fc=True).state_dict())
    for key in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.bias", "layer4.1.bn2.weight", "fc.weight", "fc.bias"]:
        assert key in names
    # 20 convs/downsample-convs + fc; ResNet-18 has 11.69M parameters with the 1000-class head
    assert sum(p.numel() for p in ResNet18(include_fc=True).parameters()) == 11_689_512


def test_feature_map_shape_and_frozen_bn_matches_batchnorm_eval():
    x = torch.rand(2, 3, 64, 96)
    bn_model = ResNet18(norm="batch").eval()
    for m in bn_model.modules():  # non-trivial statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    frozen = ResNet18(norm="frozen_batch")
    frozen.load_state_dict(bn_model.state_dict(), strict=False)
    out = frozen(x)
    assert out.shape == (2, 512, 2, 3)
    torch.testing.assert_close(out, bn_model(x), rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad for m in frozen.modules() if isinstance(m, FrozenBatchNorm2d) for p in m.parameters())


def test_load_weights_from_safetensors(tmp_path):
    src = ResNet18(include_fc=True)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = ResNet18(norm="frozen_batch")
    load_resnet_weights(dst, path)
    torch.testing.assert_close(dst.layer3[1].conv2.weight, src.layer3[1].conv2.weight)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_resnet_weights(dst, tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(Exception):
        load_resnet_weights(dst, bad)


def test_no_torchvision_import():
    import sys

    import robokit.policies.act  # noqa: F401
    import robokit.policies.diffusion  # noqa: F401

    assert "torchvision" not in sys.modules
