"""ResNet-18 in plain torch, with torchvision's parameter names (conv1, bn1, layer1.0.conv1, ..., fc).

ImageNet weights saved as safetensors with those names load with `load_resnet_weights(model, path)`
(or the policies' `pretrained_backbone_weights` option); the offline default is random init
(Kaiming normal convs, norm weight 1 / bias 0, as torchvision does).

Normalization layers: "batch" (trainable BatchNorm), "frozen_batch" (fixed affine from stored
statistics, used by ACT), "group" (GroupNorm with channels // 16 groups, used by Diffusion Policy).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from robokit.policies import onednn

NORM_KINDS = ("batch", "frozen_batch", "group")


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (all buffers, never trained)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # present in BatchNorm checkpoints
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def affine(self) -> tuple[Tensor, Tensor]:
        """(scale, shift) per channel: the layer is x * scale + shift."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: Tensor) -> Tensor:
        scale, shift = self.affine()
        return torch.addcmul(shift[None, :, None, None], x, scale[None, :, None, None])  # one pass over x


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "frozen_batch":
        return FrozenBatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(channels // 16, channels)
    raise ValueError(f"resnet norm {kind!r} is not one of {NORM_KINDS}")


def conv_norm(
    x: Tensor, conv: nn.Conv2d, norm: nn.Module, relu: bool = False, residual: Tensor | None = None
) -> Tensor:
    """`relu(norm(conv(x)) + residual)`, ReLU and residual optional.

    A frozen batch norm is an affine map per channel, so it is folded into the convolution (weights
    scaled, shift as the bias): one pass over the feature map instead of two, and in training one
    less activation to keep and to differentiate (ACT's batch-8 480x640 step spent ~8% in it). On the
    CPU without autograd the ReLU and residual add join oneDNN's convolution too (onednn.conv2d)."""
    if not isinstance(norm, FrozenBatchNorm2d):
        out = norm(conv(x))
    elif onednn.active(x, conv.weight):
        return onednn.conv2d(x, conv, norm, relu=relu, residual=residual)
    else:
        scale, shift = norm.affine()
        weight = conv.weight * scale.to(conv.weight.dtype)[:, None, None, None]
        out = F.conv2d(x, weight, shift.to(conv.weight.dtype), conv.stride, conv.padding, conv.dilation, conv.groups)
    if residual is not None:
        out = out + residual
    return F.relu(out, inplace=True) if relu else out


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection; `downsample` matches shapes when stride/width change."""

    def __init__(self, in_channels: int, channels: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm, channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), make_norm(norm, channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_norm(x, self.downsample[0], self.downsample[1])
        out = conv_norm(x, self.conv1, self.bn1, relu=True)
        return conv_norm(out, self.conv2, self.bn2, relu=True, residual=identity)


class ResNet18(nn.Module):
    """ResNet-18. `forward` returns the layer4 feature map (B, 512, H/32, W/32); `classify` adds pool + fc."""

    out_channels = 512

    def __init__(self, norm: str = "batch", include_fc: bool = False, num_classes: int = 1000):
        super().__init__()
        if norm not in NORM_KINDS:
            raise ValueError(f"resnet norm {norm!r} is not one of {NORM_KINDS}")
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, 64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, in_ch = (64, 128, 256, 512), 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(in_ch, width, stride, norm), BasicBlock(width, width, 1, norm))
            self.add_module(f"layer{i + 1}", layer)
            in_ch = width
        self.fc = nn.Linear(512, num_classes) if include_fc else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        # (B, 3, H, W) -> (B, 64, H/4, W/4) -> ... -> (B, 512, H/32, W/32), channels-last in memory: oneDNN's
        # convolutions and max pooling are faster on it (max pool 8x, the whole 480x640 pass ~15% on CPU).
        # The weights stay in the default layout (fused AdamW needs parameter and state layouts to agree).
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(conv_norm(x, self.conv1, self.bn1, relu=True))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def classify(self, x: Tensor) -> Tensor:
        if self.fc is None:
            raise RuntimeError("ResNet18 was built with include_fc=False")
        return self.fc(torch.flatten(self.forward(x).mean(dim=(2, 3)), 1))


def load_resnet_weights(model: ResNet18, path: str | Path) -> None:
    """Load torchvision-named ResNet-18 weights from a safetensors file (the fc layer is optional)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_backbone_weights: {str(path)!r} is not a file (expected a .safetensors)")
    if path.suffix != ".safetensors":
        raise ValueError(f"pretrained_backbone_weights: {str(path)!r} must be a .safetensors file (no pickles)")
    state = load_file(str(path))
    state = {k.removeprefix("model.").removeprefix("backbone."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if model.fc is None:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if isinstance(model.bn1, nn.GroupNorm):
        raise ValueError(
            "pretrained_backbone_weights: ImageNet weights were trained with BatchNorm; "
            "set use_group_norm=False to load them"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not ResNet-18 weights; missing {missing[:5]}, unexpected {unexpected[:5]}")
