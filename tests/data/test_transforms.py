"""Image augmentations: reproducibility, each operation's effect, config checks, DataLoader workers."""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
import pytest
import torch

from robokit.data.transforms import (
    TRANSFORM_NAMES,
    AffineSpec,
    ImageTransforms,
    ImageTransformsConfig,
    TransformSpec,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    adjust_sharpness,
    affine,
    rgb_to_grayscale,
)


def make_image(height: int = 24, width: int = 32, seed: int = 0, batch: int | None = None) -> torch.Tensor:
    """A smooth colour gradient plus noise, float32 (C, H, W) in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    base = torch.stack([xx, yy, 1 - xx * yy])
    shape = (3, height, width) if batch is None else (batch, 3, height, width)
    return (0.1 + 0.7 * base + 0.1 * torch.rand(shape, generator=g)).clamp(0, 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_on(**kw) -> ImageTransformsConfig:
    return ImageTransformsConfig(enable=True, **kw)


# --- randomness


def test_same_seed_same_output_different_seed_different():
    tf = ImageTransforms(all_on(max_num_transforms=6))
    image = make_image()
    a, b, c = tf(image, gen(7)), tf(image, gen(7)), tf(image, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, image)


def test_selection_count_order_and_weights():
    tf = ImageTransforms(all_on())
    ops = tf.sample(gen(0))
    assert len(ops) == 3 and len({name for name, _ in ops}) == 3
    for seed in range(20):
        names = [name for name, _ in tf.sample(gen(seed))]
        assert names == sorted(names, key=TRANSFORM_NAMES.index)  # config order unless random_order
    cfg = all_on(max_num_transforms=10, contrast=TransformSpec(0.0, 0.8, 1.2), affine=AffineSpec(weight=0.0))
    assert sorted(n for n, _ in ImageTransforms(cfg).sample(gen(1))) == [
        "brightness",
        "hue",
        "saturation",
        "sharpness",
    ]
    heavy = all_on(max_num_transforms=1, brightness=TransformSpec(1e6, 0.8, 1.2))
    picks = [ImageTransforms(heavy).sample(gen(s))[0][0] for s in range(50)]
    assert picks.count("brightness") >= 49
    shuffled = ImageTransforms(all_on(max_num_transforms=6, random_order=True))
    orders = {tuple(n for n, _ in shuffled.sample(gen(s))) for s in range(20)}
    assert len(orders) > 1


def test_parameters_stay_in_their_ranges():
    cfg = all_on(max_num_transforms=6)
    for seed in range(30):
        for name, param in ImageTransforms(cfg).sample(gen(seed)):
            if name == "affine":
                degrees, (fx, fy) = param
                assert abs(degrees) <= 5 and abs(fx) <= 0.05 and abs(fy) <= 0.05
            else:
                spec = getattr(cfg, name)
                assert spec.min <= param <= spec.max, name


def test_disabled_is_identity():
    image = make_image()
    assert ImageTransforms(ImageTransformsConfig())(image, gen(0)) is image


# --- operations


def test_brightness_direction():
    image = make_image()
    assert adjust_brightness(image, 1.5).mean() > image.mean() * 1.3
    assert adjust_brightness(image, 0.5).mean() < image.mean() * 0.6
    assert torch.equal(adjust_brightness(image, 1.0), image)


def test_contrast_direction():
    image = make_image()
    flat = adjust_contrast(image, 0.0)
    assert torch.allclose(flat, rgb_to_grayscale(image).mean().expand_as(image), atol=1e-6)
    assert adjust_contrast(image, 1.5).std() > image.std() > adjust_contrast(image, 0.5).std()


def test_saturation_zero_gives_grey_and_more_saturation_spreads_channels():
    image = make_image()
    grey = adjust_saturation(image, 0.0)
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])
    assert torch.allclose(grey[:1], rgb_to_grayscale(image), atol=1e-6)

    def spread(x):
        return (x.max(dim=0).values - x.min(dim=0).values).mean()

    assert spread(adjust_saturation(image, 1.5)) > spread(image) > spread(adjust_saturation(image, 0.5))


def test_hue_matches_colorsys_and_zero_is_identity():
    image = make_image(6, 5)
    assert torch.equal(adjust_hue(image, 0.0), image)
    for shift in (0.05, -0.2, 0.5):
        ours = adjust_hue(image, shift)
        pixels = image.permute(1, 2, 0).reshape(-1, 3).double().numpy()
        expected = []
        for r, g, b in pixels:
            h, s, v = colorsys.rgb_to_hsv(r, g, b)
            expected.append(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v))
        expected = torch.tensor(np.array(expected)).reshape(6, 5, 3).permute(2, 0, 1)
        assert torch.allclose(ours.double(), expected, atol=1e-5), shift
    grey = torch.full((3, 4, 4), 0.4)
    assert torch.allclose(adjust_hue(grey, 0.3), grey)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 4)
    assert torch.allclose(adjust_hue(red, 1 / 3)[:, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)


def test_sharpness_one_is_identity_zero_is_the_smoothing_kernel():
    image = make_image()
    assert torch.equal(adjust_sharpness(image, 1.0), image)
    blurred = adjust_sharpness(image, 0.0)
    kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    y, x = 5, 7
    expected = (image[:, y - 1 : y + 2, x - 1 : x + 2] * kernel).sum(dim=(-2, -1))
    assert torch.allclose(blurred[:, y, x], expected, atol=1e-6)
    assert torch.equal(blurred[:, 0], image[:, 0]) and torch.equal(
        blurred[:, :, -1], image[:, :, -1]
    )  # borders kept

    def roughness(t):
        return (t[:, 1:-1, 1:] - t[:, 1:-1, :-1]).abs().mean()

    assert (
        roughness(adjust_sharpness(image, 1.5)) > roughness(image) > roughness(adjust_sharpness(image, 0.5))
    )


def test_affine_identity_rotation_and_translation():
    image = make_image()
    assert torch.equal(affine(image, 0.0, (0.0, 0.0)), image)
    square = make_image(16, 16)
    # +90 degrees is a counter-clockwise quarter turn on screen, like torch.rot90(k=1).
    assert torch.allclose(affine(square, 90.0, (0.0, 0.0)), torch.rot90(square, 1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(affine(image, 180.0, (0.0, 0.0)), image.flip(-1).flip(-2), atol=1e-5)
    shifted = affine(image, 0.0, (3.0, -2.0))  # 3 px right, 2 px up, zero padding
    assert torch.allclose(shifted[:, :-2, 3:], image[:, 2:, :-3], atol=1e-5)
    assert shifted[:, :, :3].abs().max() < 1e-5 and shifted[:, -2:, :].abs().max() < 1e-5
    small = affine(image, 2.0, (0.5, 0.0))
    assert small.shape == image.shape and 0 < (small - image).abs().mean() < 0.1


# --- contract


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_range_shape_dtype_and_batches(dtype):
    tf = ImageTransforms(all_on(max_num_transforms=6, brightness=TransformSpec(1.0, 1.5, 2.0)))
    batch = make_image(batch=4).to(dtype)
    out = tf(batch, gen(3))
    assert out.shape == batch.shape and out.dtype == dtype
    assert out.min() >= 0 and out.max() <= 1
    # A batch gets the same transforms as each of its images on its own.
    for i in range(4):
        single = tf(batch[i], gen(3))
        assert torch.allclose(out[i].float(), single.float(), atol=1e-3 if dtype == torch.float16 else 1e-6)


def test_grayscale_images_and_bad_input():
    tf = ImageTransforms(all_on(max_num_transforms=6))
    grey = make_image()[:1]
    out = tf(grey, gen(0))
    assert out.shape == grey.shape and 0 <= out.min() and out.max() <= 1
    with pytest.raises(TypeError, match="dtype torch.uint8, expected a float tensor"):
        tf((make_image() * 255).to(torch.uint8), gen(0))
    with pytest.raises(ValueError, match=r"shape \(4, 8, 8\)"):
        tf(torch.rand(4, 8, 8), gen(0))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="max_num_transforms is 0"):
        ImageTransformsConfig(max_num_transforms=0)
    with pytest.raises(ValueError, match="brightness: min 1.3 > max 1.2"):
        ImageTransformsConfig(brightness=TransformSpec(1.0, 1.3, 1.2))
    with pytest.raises(ValueError, match=r"hue: range \[-0.7, 0.05\] is outside"):
        ImageTransformsConfig(hue=TransformSpec(1.0, -0.7, 0.05))
    with pytest.raises(ValueError, match="saturation.weight is -1"):
        ImageTransformsConfig(saturation=TransformSpec(-1, 0.5, 1.5))
    with pytest.raises(ValueError, match="affine.degrees is 400"):
        ImageTransformsConfig(affine=AffineSpec(degrees=400))
    off = {
        name: dataclasses.replace(getattr(ImageTransformsConfig(), name), weight=0.0)
        for name in TRANSFORM_NAMES
    }
    with pytest.raises(ValueError, match="every transform has weight 0"):
        ImageTransformsConfig(enable=True, **off)


# --- DataLoader


class _AugmentedImages(torch.utils.data.Dataset):
    def __init__(self, transforms: ImageTransforms, seed: int):
        self.images = make_image(batch=8)
        self.transforms, self.seed = transforms, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return self.transforms(self.images[index], generator)


def test_reproducible_in_dataloader_workers():
    dataset = _AugmentedImages(ImageTransforms(all_on(max_num_transforms=6)), seed=5)
    in_process = torch.cat(list(torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=0)))
    in_workers = torch.cat(list(torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2)))
    assert torch.equal(in_process, in_workers)
    assert not torch.equal(in_process[0], dataset.images[0])
