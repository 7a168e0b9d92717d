"""Image augmentations for training, in plain torch (no torchvision), reproducible with a generator.

`ImageTransforms(cfg)(image, generator)` picks up to `max_num_transforms` of the enabled transforms
(brightness, contrast, saturation, hue, sharpness, affine) at random by weight, without
replacement, draws each one's parameter uniformly from its range and applies them (in the
config's order unless `random_order`). Every random number comes from `generator`, so a
generator seeded from (seed, sample index) gives the same augmented sample in any DataLoader
worker. The defaults are LeRobot's (0.4): all six with weight 1, at most 3 per sample.

The colour operations follow the torchvision / PIL definitions (float images in [0, 1], results
clamped to [0, 1]):
- brightness f: f * img;  contrast f: blend with the mean grey level of the image;
- saturation f: blend with the image's greyscale (0.2989 R + 0.587 G + 0.114 B);
- hue h: RGB -> HSV, H += h (mod 1), HSV -> RGB;
- sharpness f: blend with the image smoothed by [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (border
  pixels kept as they are); f > 1 sharpens, f < 1 blurs;
- affine: rotation by an angle in degrees about the centre and a translation by a fraction of the
  size, sampled bilinearly (`grid_sample`); pixels from outside the image are black (zero padding,
  like torchvision's fill=0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

TRANSFORM_NAMES = ("brightness", "contrast", "saturation", "hue", "sharpness", "affine")
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


@dataclass
class TransformSpec:
    """A colour transform: how often it is picked and the range its factor is drawn from."""

    weight: float = 1.0
    """Relative chance of being picked among the enabled transforms (0 disables it)."""
    min: float = 1.0
    """Lower end of the uniformly sampled factor."""
    max: float = 1.0
    """Upper end of the uniformly sampled factor."""


@dataclass
class AffineSpec:
    """The small random affine: rotation about the centre plus translation."""

    weight: float = 1.0
    """Relative chance of being picked among the enabled transforms (0 disables it)."""
    degrees: float = 5.0
    """Rotation drawn uniformly from [-degrees, degrees]."""
    translate: float = 0.05
    """Shift drawn uniformly from [-translate, translate] times the width (x) and the height (y)."""


@dataclass
class ImageTransformsConfig:
    """Random image augmentations applied per training sample (LeRobot's defaults)."""

    enable: bool = False
    """Apply the augmentations (off: images pass through unchanged)."""
    max_num_transforms: int = 3
    """How many of the enabled transforms are applied to each sample (at most the number enabled)."""
    random_order: bool = False
    """Apply the picked transforms in random order instead of the order listed here."""
    brightness: TransformSpec = field(default_factory=lambda: TransformSpec(1.0, 0.8, 1.2))
    """Brightness factor (1 = unchanged)."""
    contrast: TransformSpec = field(default_factory=lambda: TransformSpec(1.0, 0.8, 1.2))
    """Contrast factor (1 = unchanged)."""
    saturation: TransformSpec = field(default_factory=lambda: TransformSpec(1.0, 0.5, 1.5))
    """Saturation factor (1 = unchanged, 0 = greyscale)."""
    hue: TransformSpec = field(default_factory=lambda: TransformSpec(1.0, -0.05, 0.05))
    """Hue shift as a fraction of the colour circle (0 = unchanged), within [-0.5, 0.5]."""
    sharpness: TransformSpec = field(default_factory=lambda: TransformSpec(1.0, 0.5, 1.5))
    """Sharpness factor (1 = unchanged, < 1 blurs, > 1 sharpens)."""
    affine: AffineSpec = field(default_factory=AffineSpec)
    """Small rotation and translation."""

    def __post_init__(self) -> None:
        if self.max_num_transforms < 1:
            raise ValueError(
                f"ImageTransformsConfig.max_num_transforms is {self.max_num_transforms}, expected >= 1"
            )
        for name in TRANSFORM_NAMES:
            spec = getattr(self, name)
            if not (math.isfinite(spec.weight) and spec.weight >= 0):
                raise ValueError(
                    f"ImageTransformsConfig.{name}.weight is {spec.weight}, expected a finite number >= 0"
                )
            if name == "affine":
                if not 0 <= spec.degrees <= 180:
                    raise ValueError(
                        f"ImageTransformsConfig.affine.degrees is {spec.degrees}, expected in [0, 180]"
                    )
                if not 0 <= spec.translate <= 1:
                    raise ValueError(
                        f"ImageTransformsConfig.affine.translate is {spec.translate}, expected in [0, 1]"
                    )
                continue
            if not spec.min <= spec.max:
                raise ValueError(
                    f"ImageTransformsConfig.{name}: min {spec.min} > max {spec.max}, expected min <= max"
                )
            low, high = (-0.5, 0.5) if name == "hue" else (0.0, math.inf)
            if spec.min < low or spec.max > high:
                raise ValueError(
                    f"ImageTransformsConfig.{name}: range [{spec.min}, {spec.max}] is outside [{low}, {high}]"
                )
        if self.enable and not any(getattr(self, name).weight > 0 for name in TRANSFORM_NAMES):
            raise ValueError("ImageTransformsConfig: enable is true but every transform has weight 0")


# ---------------------------------------------------------------------------------------------
# The operations, on float images (..., C, H, W) in [0, 1]


def _blend(image: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * image + (1.0 - factor) * other).clamp_(0.0, 1.0)


def rgb_to_grayscale(image: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) luma with the ITU-R 601 weights torchvision uses."""
    r, g, b = image.unbind(dim=-3)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(-3)


def adjust_brightness(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale every value by `factor` (0 gives black)."""
    return (image * factor).clamp_(0.0, 1.0)


def adjust_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's mean grey level (0 gives a flat grey image)."""
    gray = rgb_to_grayscale(image) if image.shape[-3] == 3 else image
    mean = gray.mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(image, mean, factor)


def adjust_saturation(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the greyscale image (0 gives grey, > 1 more vivid); identity for 1 channel."""
    if image.shape[-3] == 1:
        return image
    return _blend(image, rgb_to_grayscale(image), factor)


def adjust_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by `shift` turns (in [-0.5, 0.5]); identity for 1 channel.

    HSV with value V = max, chroma C = max - min and hue H in sextants [0, 6); back to RGB by
    channel = V - C * clamp(min(k, 4 - k), 0, 1) with k = (n + H) mod 6, n = 5, 3, 1 for R, G, B
    (the closed form of the usual per-sextant table), so only the hue plane is ever split by case.
    """
    if image.shape[-3] == 1 or shift == 0:
        return image
    r, g, b = image.unbind(dim=-3)
    value = image.amax(dim=-3)  # (..., H, W)
    chroma = value - image.amin(dim=-3)
    inverse = 1.0 / torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        value == r,
        (g - b) * inverse,
        torch.where(value == g, 2.0 + (b - r) * inverse, 4.0 + (r - g) * inverse),
    )
    hue = torch.remainder(hue + 6.0 * shift, 6.0)  # grey pixels (chroma 0) stay grey whatever their hue
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=image.dtype, device=image.device).view(3, 1, 1)
    k = torch.remainder(hue.unsqueeze(-3) + offsets, 6.0)  # (..., 3, H, W)
    weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return (value.unsqueeze(-3) - chroma.unsqueeze(-3) * weight).clamp_(0.0, 1.0)


def adjust_sharpness(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with a smoothed copy (PIL's SMOOTH kernel, borders untouched): < 1 blurs, > 1 sharpens."""
    height, width = image.shape[-2:]
    if height <= 2 or width <= 2:
        return image
    channels = image.shape[-3]
    flat = image.reshape(-1, channels, height, width)  # (B, C, H, W)
    kernel = torch.ones(3, 3, dtype=image.dtype, device=image.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    smooth = flat.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(flat, kernel, groups=channels)  # (B, C, H-2, W-2)
    return _blend(flat, smooth, factor).reshape(image.shape)


def affine(image: torch.Tensor, degrees: float, translate: tuple[float, float]) -> torch.Tensor:
    """Rotate by `degrees` (counter-clockwise on screen) about the centre, then shift by
    `translate` = (dx, dy) pixels; bilinear, zero padding."""
    if degrees == 0 and translate[0] == 0 and translate[1] == 0:
        return image  # exact identity (the sampling grid would add ~1e-6 of rounding)
    height, width = image.shape[-2:]
    channels = image.shape[-3]
    flat = image.reshape(-1, channels, height, width)  # (B, C, H, W)
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # Output pixel o (centred pixel coordinates, y down) reads input R^T (o - t), with R the
    # on-screen counter-clockwise rotation; in grid_sample's normalized coordinates
    # (x_n = x / (W / 2)) that is theta = S^-1 R^T S | -S^-1 R^T t, S = diag(W/2, H/2).
    dx, dy = translate
    sx, sy = width / 2.0, height / 2.0
    rt = ((cos, -sin), (sin, cos))  # R^T for R = [[cos, sin], [-sin, cos]] (y axis points down)
    theta = torch.tensor(
        [
            [rt[0][0], rt[0][1] * sy / sx, -(rt[0][0] * dx + rt[0][1] * dy) / sx],
            [rt[1][0] * sx / sy, rt[1][1], -(rt[1][0] * dx + rt[1][1] * dy) / sy],
        ],
        dtype=torch.float32 if image.dtype in (torch.float16, torch.bfloat16) else image.dtype,
        device=image.device,
    ).expand(flat.shape[0], 2, 3)
    work = flat.to(theta.dtype)
    grid = F.affine_grid(theta, list(work.shape), align_corners=False)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.clamp_(0.0, 1.0).to(image.dtype).reshape(image.shape)


# ---------------------------------------------------------------------------------------------
# Random selection


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator, dtype=torch.float64).item()


class ImageTransforms:
    """Random augmentations for float images (C, H, W) or (B, C, H, W) in [0, 1].

    A batch gets the same transforms and parameters for all its images. Holds no state besides
    the config, so it pickles into DataLoader workers.
    """

    def __init__(self, cfg: ImageTransformsConfig) -> None:
        self.cfg = cfg
        self.names = [name for name in TRANSFORM_NAMES if getattr(cfg, name).weight > 0]
        self.weights = torch.tensor(
            [float(getattr(cfg, name).weight) for name in self.names], dtype=torch.float64
        )
        self.num_transforms = min(cfg.max_num_transforms, len(self.names))

    def sample(self, generator: torch.Generator | None = None) -> list[tuple[str, object]]:
        """Draw which transforms to apply, in order, with their parameters."""
        if not self.cfg.enable or self.num_transforms == 0:
            return []
        picked = torch.multinomial(self.weights, self.num_transforms, replacement=False, generator=generator)
        if self.cfg.random_order:
            picked = picked[torch.randperm(len(picked), generator=generator)]
        else:
            picked = picked.sort().values
        ops = []
        for i in picked.tolist():
            name = self.names[i]
            spec = getattr(self.cfg, name)
            if name == "affine":
                degrees = _uniform(-spec.degrees, spec.degrees, generator)
                shift = (
                    _uniform(-spec.translate, spec.translate, generator),
                    _uniform(-spec.translate, spec.translate, generator),
                )
                ops.append((name, (degrees, shift)))
            else:
                ops.append((name, _uniform(spec.min, spec.max, generator)))
        return ops

    @staticmethod
    def apply(image: torch.Tensor, ops: Sequence[tuple[str, object]]) -> torch.Tensor:
        """Apply ops from `sample()` to a float image (..., C, H, W); the dtype is kept."""
        if not ops:
            return image
        if not torch.is_floating_point(image):
            raise TypeError(
                f"ImageTransforms: image has dtype {image.dtype}, expected a float tensor in [0, 1] "
                "(divide uint8 images by 255 first)"
            )
        if image.ndim < 3 or image.shape[-3] not in (1, 3):
            raise ValueError(
                f"ImageTransforms: image has shape {tuple(image.shape)}, expected (C, H, W) or "
                "(B, C, H, W) with C = 1 or 3"
            )
        dtype = image.dtype
        out = image.float() if dtype in (torch.float16, torch.bfloat16) else image
        for name, param in ops:
            if name == "brightness":
                out = adjust_brightness(out, param)
            elif name == "contrast":
                out = adjust_contrast(out, param)
            elif name == "saturation":
                out = adjust_saturation(out, param)
            elif name == "hue":
                out = adjust_hue(out, param)
            elif name == "sharpness":
                out = adjust_sharpness(out, param)
            elif name == "affine":
                degrees, (fx, fy) = param
                out = affine(out, degrees, (fx * out.shape[-1], fy * out.shape[-2]))
            else:
                raise ValueError(
                    f"ImageTransforms: unknown transform {name!r}, expected one of {TRANSFORM_NAMES}"
                )
        return out.to(dtype)

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(image, self.sample(generator))

    def __repr__(self) -> str:
        return (
            f"ImageTransforms(enable={self.cfg.enable}, transforms={self.names}, "
            f"max_num_transforms={self.num_transforms}, random_order={self.cfg.random_order})"
        )
