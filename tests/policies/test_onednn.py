"""The oneDNN fast path of CPU inference: same function as torch's ops, taken only where it is safe,
and never stale when the weights change."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robokit.policies import Policy, make_config, onednn
from robokit.policies.resnet import FrozenBatchNorm2d, ResNet18

from .conftest import make_features, make_observation, make_stats


@pytest.fixture(autouse=True)
def fresh_cache():
    onednn.clear_cache()
    yield
    onednn.set_enabled(True)
    onednn.clear_cache()


def cached(param: torch.Tensor) -> int:
    """How many prepared copies of `param` the fast path holds."""
    entry = onednn._cache.get(param)
    return 0 if entry is None else len(entry[1])


def test_linear_matches_torch_on_views_and_batched_inputs():
    torch.manual_seed(0)
    weight, bias = torch.randn(96, 40), torch.randn(96)
    x = torch.randn(3, 7, 40)
    with torch.no_grad():
        assert torch.allclose(onednn.linear(x, weight, bias), F.linear(x, weight, bias), rtol=1e-5, atol=1e-5)
        fused = onednn.linear(x, weight, bias, relu=True)  # the ReLU inside the matmul
        assert torch.allclose(fused, F.relu(F.linear(x, weight, bias)), rtol=1e-5, atol=1e-5)
        assert (fused == 0).any()
        strided = torch.randn(3, 40, 7).transpose(1, 2)  # a non-contiguous input, as ConvTranspose1d passes
        assert torch.allclose(onednn.linear(strided, weight), F.linear(strided, weight), rtol=1e-5, atol=1e-5)
        part = weight[32:64]  # a slice, as attention's q/k/v projections use
        assert torch.allclose(
            onednn.linear(x, part, bias[32:64]), F.linear(x, part, bias[32:64]), rtol=1e-5, atol=1e-5
        )
        wide = torch.randn(24, 40)
        x2 = torch.randn(5, 24)
        assert torch.allclose(
            onednn.linear(x2, wide.t()), x2 @ wide, rtol=1e-5, atol=1e-5
        )  # a transposed view
    assert cached(weight) == 2  # the whole weight and the slice, each packed once
    assert cached(wide) == 1
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"), torch.no_grad():
        onednn.linear(torch.randn(4, 41), weight)  # torch's own error for a wrong input size


def test_linear_skips_the_fast_path_for_autograd_vectors_and_when_disabled():
    layer = onednn.Linear(16, 8)
    x = torch.randn(4, 16)
    out = layer(x)  # grad enabled, parameters require grad: torch's op, gradients flow
    out.sum().backward()
    assert layer.weight.grad is not None and cached(layer.weight) == 0
    with torch.no_grad():
        layer(torch.randn(1, 16))  # one row: MKL's gemv
        assert cached(layer.weight) == 0
        onednn.set_enabled(False)
        layer(x)
        assert cached(layer.weight) == 0
        onednn.set_enabled(True)
        layer(x)
        assert cached(layer.weight) == 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        onednn.clear_cache()
        assert layer(x).dtype == torch.bfloat16 and cached(layer.weight) == 0  # autocast: torch's op


def test_packed_weights_follow_in_place_updates_and_dtype_changes():
    torch.manual_seed(0)
    layer = onednn.Linear(32, 16)
    x = torch.randn(6, 32)
    with torch.no_grad():
        before = layer(x)
        layer.weight.mul_(2.0)  # in place, as an optimizer step or load_state_dict does
        after = layer(x)
    assert torch.allclose(after, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(x).sum().backward()
    opt.step()
    with torch.no_grad():
        assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    layer.to(torch.bfloat16)  # nn.Module.to keeps the Parameter object, with new data
    with torch.no_grad():
        got = layer(x.bfloat16())
    assert got.dtype == torch.bfloat16
    want = F.linear(x.bfloat16().float(), layer.weight.float(), layer.bias.float())
    assert torch.allclose(got.float(), want, rtol=2e-2, atol=2e-2)


def _randomize_norms(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_()
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_()


def test_resnet_fused_inference_matches_the_module_path_and_refolds_new_statistics():
    torch.manual_seed(0)
    model = ResNet18(norm="frozen_batch").eval()
    _randomize_norms(model)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        onednn.set_enabled(False)
        want = model(x)
        onednn.set_enabled(True)
        got = model(x)
        assert cached(model.layer1[0].conv1.weight) == 1  # the fused path ran
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())

        model.layer4[1].bn2.running_mean.add_(3.0)  # new statistics, the conv weight unchanged: must re-fold
        onednn.set_enabled(False)
        want = model(x)
        onednn.set_enabled(True)
        got = model(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_conv2d_module_takes_the_fast_path_in_inference_only():
    torch.manual_seed(0)
    conv = onednn.Conv2d(8, 16, kernel_size=1)
    x = torch.rand(2, 8, 5, 7)
    with torch.no_grad():
        got = conv(x)
        assert cached(conv.weight) == 1
        conv.bias.add_(1.0)  # the bias is part of what was prepared
        torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got + 1.0, F.conv2d(x, conv.weight, conv.bias), rtol=1e-5, atol=1e-5)
    onednn.clear_cache()
    conv(x).sum().backward()
    assert conv.weight.grad is not None and cached(conv.weight) == 0


def test_resnet_training_keeps_torchs_path():
    model = ResNet18(norm="frozen_batch")
    out = model(torch.rand(1, 3, 32, 32))
    out.mean().backward()
    assert model.conv1.weight.grad is not None
    assert cached(model.conv1.weight) == 0


def test_policy_inference_is_the_same_function_and_train_frees_the_copies():
    torch.manual_seed(0)
    features = make_features(cams=("front",), state_dim=6, action_dim=6, hw=(48, 64))
    cfg = make_config(
        "act",
        chunk_size=8,
        n_action_steps=8,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=2,
        n_vae_encoder_layers=1,
        latent_dim=4,
    )
    policy = Policy.build(cfg, features, make_stats(features)).eval()
    _randomize_norms(policy)
    obs = make_observation(features, batch=2)
    onednn.set_enabled(False)
    want = policy.predict_action_chunk(obs)
    onednn.set_enabled(True)
    got = policy.predict_action_chunk(obs)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    linear1 = policy.model.encoder.layers[0].linear1.weight
    assert cached(linear1) == 1
    policy.train()
    assert cached(linear1) == 0
    policy.predict_action_chunk(obs)  # a prediction from training mode keeps its mode and its copies
    assert policy.training and cached(linear1) == 1
