"""robokit's attention / dropout compute torch's functions with torch's parameters, and their quick masks drop p."""

import pytest
import torch
from torch import nn

from robokit.policies import make_config
from robokit.policies.attention import Dropout, MultiheadAttention, dropout_mask


def _pair(dim=32, heads=4, p=0.0):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(dim, heads, dropout=p)
    ours = MultiheadAttention(dim, heads, p)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    return ours, ref


@pytest.mark.parametrize("masked", [False, True])
def test_same_function_as_torch(masked):
    ours, ref = _pair()
    q, kv = torch.randn(7, 3, 32), torch.randn(5, 3, 32)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True], [True] + [False] * 4]) if masked else None
    for query, key, value in ((kv, kv, kv), (q, kv, kv), (q, kv + 1, kv)):  # self, cross, keys != values
        want = ref(query, key, value, key_padding_mask=pad, need_weights=False)[0]
        got = ours(query, key, value, key_padding_mask=pad)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_same_gradients_as_torch_without_dropout():
    ours, ref = _pair()
    ours.train(), ref.train()
    x = torch.randn(6, 2, 32)
    ref(x, x, x, need_weights=False)[0].square().sum().backward()
    ours(x, x, x).square().sum().backward()
    for (name, a), b in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_torch_masks_reproduce_torch_attention_dropout():
    ours, ref = _pair(p=0.3)
    ours.fast_dropout = False
    ours.train(), ref.train()
    x = torch.randn(9, 4, 32)
    torch.manual_seed(5)
    want = ref(x, x, x, need_weights=False)[0]
    torch.manual_seed(5)
    torch.testing.assert_close(ours(x, x, x), want, atol=1e-6, rtol=1e-5)


def test_fast_attention_dropout_is_unbiased_and_seeded():
    ours, _ = _pair(p=0.5)
    q = torch.randn(4, 1, 32).expand(4, 4000, 32).contiguous()  # one sample repeated: many masks
    ours.eval()
    clean = ours(q, q, q)[:, 0]
    ours.train()
    torch.manual_seed(1)
    noisy = ours(q, q, q)
    torch.manual_seed(1)
    torch.testing.assert_close(ours(q, q, q), noisy, atol=0, rtol=0)
    assert not torch.allclose(noisy[:, 0], clean, atol=1e-3)
    torch.testing.assert_close(noisy.mean(dim=1), clean, atol=0.05, rtol=0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_drops_p(p):
    torch.manual_seed(0)
    mask = dropout_mask((1001, 999), p)  # odd size: the two 15-bit halves and the tail
    values = mask.unique()
    assert len(values) == 2 and values[0] == 0 and values[1].item() == pytest.approx(1 / (1 - p))
    flat = (mask == 0).float().flatten()
    n = flat.numel()
    for part in (flat, flat[: n // 2], flat[n // 2 :]):  # each half of the draw
        assert part.mean().item() == pytest.approx(p, abs=0.004)
    assert mask.mean().item() == pytest.approx(1.0, abs=0.01)  # unbiased
    torch.manual_seed(0)
    assert torch.equal(dropout_mask((1001, 999), p), mask)
    assert not torch.equal(dropout_mask((1001, 999), p), mask)


def test_dropout_module_modes():
    x = torch.ones(1000, 100)
    fast, plain = Dropout(0.2), Dropout(0.2, fast=False)
    torch.manual_seed(3)
    want = nn.functional.dropout(x, 0.2, True)
    torch.manual_seed(3)
    assert torch.equal(plain(x), want)
    assert (fast(x) == 0).float().mean().item() == pytest.approx(0.2, abs=0.005)
    fast.eval()
    assert fast(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


def test_act_dropout_masks_option():
    assert make_config("act").dropout_masks == "fast"
    with pytest.raises(ValueError, match="dropout_masks='bernoulli'"):
        make_config("act", dropout_masks="bernoulli")
