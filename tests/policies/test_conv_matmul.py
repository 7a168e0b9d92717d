"""The U-Net's matmul-form convolutions compute what torch's conv1d / conv_transpose1d compute, gradients too."""

import pytest
import torch
import torch.nn.functional as F

from robokit.policies.diffusion import Conv1d, ConvTranspose1d


@pytest.mark.parametrize("in_ch, out_ch, k, stride, pad, t", [
    (6, 10, 5, 1, 2, 16),   # the U-Net's Conv1dBlock
    (8, 8, 3, 2, 1, 16),    # downsampling
    (8, 8, 3, 2, 1, 7),     # odd length
    (12, 3, 1, 1, 0, 4),    # residual / final 1x1
])
def test_conv1d_matches_torch(in_ch, out_ch, k, stride, pad, t):
    conv = Conv1d(in_ch, out_ch, k, stride=stride, padding=pad)
    x = torch.randn(3, in_ch, t, requires_grad=True)
    got = conv(x)
    want = F.conv1d(x, conv.weight, conv.bias, stride, pad)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(got.square().sum(), (x, conv.weight, conv.bias))
    wants = torch.autograd.grad(want.square().sum(), (x, conv.weight, conv.bias))
    for g, w in zip(grads, wants):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ch, k, stride, pad, t, bias", [(8, 4, 2, 1, 4, True), (5, 4, 2, 1, 1, True), (6, 3, 1, 0, 5, False)])
def test_conv_transpose1d_matches_torch(ch, k, stride, pad, t, bias):
    conv = ConvTranspose1d(ch, ch + 1, k, stride=stride, padding=pad, bias=bias)
    x = torch.randn(2, ch, t, requires_grad=True)
    got = conv(x)
    want = F.conv_transpose1d(x, conv.weight, conv.bias, stride, pad)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    params = (x, conv.weight) + ((conv.bias,) if bias else ())
    for g, w in zip(torch.autograd.grad(got.square().sum(), params), torch.autograd.grad(want.square().sum(), params)):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
