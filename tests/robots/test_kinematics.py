"""SO-100/101 kinematics: forward kinematics against the link lengths, Jacobian, IK round trip, limits."""

import numpy as np
import pytest

from robokit.robots.kinematics import SO101_CHAIN, ik_step, inverse_kinematics

CHAIN = SO101_CHAIN


def random_configs(n, seed=0, margin=0.8):
    rng = np.random.default_rng(seed)
    return rng.uniform(CHAIN.lower * margin, CHAIN.upper * margin, size=(n, len(CHAIN.joints)))


def test_forward_kinematics_of_known_poses():
    # zero: the L pose; every link points along x or z
    np.testing.assert_allclose(
        CHAIN.position(np.zeros(5)), [0.0304 + 0.028 + 0.1349 + 0.0611 + 0.098, 0, 0.2292]
    )
    # pan a quarter turn left: the gripper point swings onto +y
    p = CHAIN.position(np.array([np.pi / 2, 0, 0, 0, 0]))
    np.testing.assert_allclose(p, [0, 0.3524, 0.2292], atol=1e-12)
    # elbow down 90 degrees: forearm, wrist and gripper hang straight down from the elbow
    p = CHAIN.position(np.array([0, 0, np.pi / 2, 0, 0]))
    np.testing.assert_allclose(p, [0.0304 + 0.028, 0, 0.2292 - (0.1349 + 0.0611 + 0.098)], atol=1e-12)
    # wrist roll turns the gripper about its own axis: the point does not move
    np.testing.assert_allclose(CHAIN.position(np.array([0, 0, 0, 0, 1.0])), CHAIN.position(np.zeros(5)))
    pose = CHAIN.forward(np.array([0.3, -0.2, 0.5, 0.1, 0.7]))
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)


def test_jacobian_matches_finite_differences():
    for q in random_configs(5):
        eps = 1e-6
        numeric = np.stack(
            [(CHAIN.position(q + eps * e) - CHAIN.position(q - eps * e)) / (2 * eps) for e in np.eye(5)],
            axis=1,
        )
        np.testing.assert_allclose(CHAIN.position_jacobian(q), numeric, atol=1e-8)


def test_ik_of_fk_recovers_the_pose():
    rng = np.random.default_rng(1)
    for q in random_configs(40, seed=2):
        target = CHAIN.position(q)
        start = np.clip(q + rng.normal(0, 0.3, size=5), CHAIN.lower, CHAIN.upper)
        q_ik, err = inverse_kinematics(CHAIN, start, target, tol=1e-5)
        assert err < 1e-5
        assert np.linalg.norm(CHAIN.position(q_ik) - target) < 1e-5
        assert np.all(q_ik >= CHAIN.lower) and np.all(q_ik <= CHAIN.upper)


def test_a_delta_moves_the_gripper_point_by_the_delta():
    q = np.array([0.2, -0.3, 0.6, 0.2, 0.0])
    start = CHAIN.position(q)
    active = np.array([True, True, True, True, False])
    for delta in ([0.01, 0, 0], [0, -0.01, 0], [0, 0, 0.01], [0.003, 0.004, -0.005]):
        one = ik_step(CHAIN, q, start + delta, active=active)  # a single step already gets most of the way
        moved = CHAIN.position(one) - start
        assert np.linalg.norm(moved - delta) < 0.1 * np.linalg.norm(delta), (delta, moved)
        q_ik, _ = inverse_kinematics(CHAIN, q, start + np.array(delta), active=active)
        np.testing.assert_allclose(CHAIN.position(q_ik) - start, delta, atol=1e-4)
        assert q_ik[4] == q[4]  # an inactive joint stays put


def test_limits_are_respected():
    lower, upper = CHAIN.lower * 0.5, CHAIN.upper * 0.5
    q0 = np.zeros(5)
    far = np.array([1.0, 0.5, 1.0])  # out of reach
    q, err = inverse_kinematics(CHAIN, q0, far, lower=lower, upper=upper)
    assert err > 0.3
    assert np.all(q >= lower - 1e-12) and np.all(q <= upper + 1e-12)
    # a joint pinned at its limit is frozen; the others still reduce the error
    q_pinned = np.array([0.0, upper[1], 0.0, 0.0, 0.0])  # shoulder leaning forward as far as allowed
    target = CHAIN.position(q_pinned) + np.array([0.05, 0.0, -0.02])
    q1 = ik_step(CHAIN, q_pinned, target, lower=lower, upper=upper)
    assert q1[1] <= upper[1]
    assert np.linalg.norm(CHAIN.position(q1) - target) < np.linalg.norm(CHAIN.position(q_pinned) - target)


def test_wrong_joint_vector_is_named():
    with pytest.raises(ValueError, match=r"shape \(4,\).*expects \(5,\)"):
        CHAIN.position(np.zeros(4))
