"""The flow-matching pieces shared by SmolVLA, π0 and π0.5."""

import torch

from robokit.policies import flow_matching as fm


def test_euler_sampler_follows_a_straight_flow_to_the_actions():
    torch.manual_seed(0)
    actions, noise = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    seen = []
    out = fm.euler_sample(lambda x, t: noise - actions, noise, num_steps=7, on_step=lambda i, t, v: seen.append(t[0].item()))
    torch.testing.assert_close(out, actions)
    assert seen[0] == 1.0 and len(seen) == 7 and abs(seen[-1] - 1 / 7) < 1e-6


def test_noisy_actions_interpolate_between_actions_and_noise():
    actions, noise = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    x_t, target = fm.noisy_actions(actions, noise, torch.tensor([0.25, 1.0]))
    assert torch.allclose(x_t[0], torch.full((4, 3), 0.25)) and torch.allclose(x_t[1], noise[1])
    torch.testing.assert_close(target, noise - actions)


def test_sample_time_is_a_squeezed_beta_and_seeded_draws_repeat():
    g = torch.Generator().manual_seed(3)
    t = fm.sample_time(20000, generator=g)
    assert t.min() >= 0.001 and t.max() <= 1.0
    assert abs(t.mean().item() - (0.6 * 0.999 + 0.001)) < 0.01  # Beta(1.5, 1) has mean 0.6
    torch.testing.assert_close(fm.sample_time(8, generator=torch.Generator().manual_seed(1)),
                               fm.sample_time(8, generator=torch.Generator().manual_seed(1)))


def test_sinusoidal_embedding_at_zero_is_sin_zero_cos_one():
    emb = fm.sinusoidal_time_embedding(torch.tensor([0.0, 0.5]), 8)
    assert emb.shape == (2, 8) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert not torch.allclose(emb[1], emb[0])


def test_prefix_lm_mask_is_bidirectional_in_the_prefix_and_causal_after():
    pad = torch.tensor([[True, True, False, True, True]])
    ar = torch.tensor([0, 0, 0, 1, 1])
    mask = fm.prefix_lm_mask(pad, ar)[0]
    assert mask[0, 1] and mask[1, 0]  # prefix tokens see each other
    assert not mask[0, 3]  # the prefix does not see the suffix
    assert mask[3, 0] and mask[4, 3] and not mask[3, 4]  # suffix: whole prefix, then causal
    assert not mask[:, 2].any() and not mask[2].any()  # padding is invisible


def test_pad_last_dim_pads_and_refuses_to_truncate():
    assert fm.pad_last_dim(torch.ones(2, 3), 5).tolist() == [[1, 1, 1, 0, 0]] * 2
    try:
        fm.pad_last_dim(torch.ones(2, 6), 5)
    except ValueError as e:
        assert "6" in str(e) and "5" in str(e)
    else:
        raise AssertionError("a too-long vector was accepted")
