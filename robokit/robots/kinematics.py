"""Forward and inverse kinematics of the SO-100 / SO-101 arm, in numpy.

A serial chain of revolute joints. Frames: the base frame sits on the table under the
shoulder_pan axis, x forward, y left, z up. At q = 0 every joint frame is aligned with the base,
and the arm is in the calibration's middle pose: upper arm vertical, forearm and gripper pointing
straight forward (an L). Positive angles turn right-handed about each joint's axis: shoulder_pan
about z (to the left), shoulder_lift / elbow_flex / wrist_flex about y (forward / down), wrist_roll
about x (the gripper's axis).

Link dimensions (metres) are the SO-101's published model (TheRobotStudio's SO-ARM100 repository,
SO101 URDF): pan axis 0.0624 above the base, shoulder_lift 0.0304 ahead and 0.0542 above the pan
joint, upper arm 0.1126 (with a 0.028 forward offset), forearm 0.1349, wrist_flex to wrist_roll
0.0611, wrist_roll to the gripper's pinch point about 0.098. Offsets under 1 cm across the arm are
left out; the SO-100 is within a centimetre of it. Limits are the URDF's joint limits.

    q = np.zeros(5)
    SO101_CHAIN.position(q)                                # (3,) gripper point in metres
    q2, err = inverse_kinematics(SO101_CHAIN, q, target)   # damped least squares, within limits
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class RevoluteJoint:
    name: str
    origin: tuple[float, float, float]
    """Position of this joint in the previous joint's frame (the base for the first), metres."""
    axis: tuple[float, float, float]
    """Rotation axis in the joint's own frame (unit vector)."""
    lower: float
    """Lowest angle, radians."""
    upper: float
    """Highest angle, radians."""


def _skew(axis: np.ndarray) -> np.ndarray:
    x, y, z = axis
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


@dataclass(frozen=True)
class KinematicChain:
    joints: tuple[RevoluteJoint, ...]
    tool: tuple[float, float, float]
    """The end-effector point in the last joint's frame."""

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def lower(self) -> np.ndarray:
        return np.array([j.lower for j in self.joints])

    @property
    def upper(self) -> np.ndarray:
        return np.array([j.upper for j in self.joints])

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Origins (n, 3), axes (n, 3), their skew matrices K and K @ K (n, 3, 3), the tool (3,)."""
        axes = np.array([j.axis for j in self.joints], dtype=float)
        skews = np.array([_skew(a) for a in axes])
        return (
            np.array([j.origin for j in self.joints], dtype=float),
            axes,
            skews,
            skews @ skews,
            np.array(self.tool),
        )

    def _check(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (len(self.joints),):
            raise ValueError(
                f"joint vector has shape {q.shape}, the chain {self.names} expects ({len(self.joints)},)"
            )
        return q

    def frames(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World positions (n, 3) and axes (n, 3) of the joints, and the tool position (3,)."""
        rot, positions, axes = self._walk(q)
        return positions, axes, positions[-1] + rot @ self._arrays[4]

    def _walk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last joint's rotation (3, 3), and every joint's world position and axis (n, 3)."""
        q = self._check(q)
        origins, axes, skews, skews2, _ = self._arrays
        n = len(q)
        # Rodrigues per joint: R = I + sin(q) K + (1 - cos(q)) K^2, (n, 3, 3)
        local = np.eye(3) + np.sin(q)[:, None, None] * skews + (1.0 - np.cos(q))[:, None, None] * skews2
        rot, pos = np.eye(3), np.zeros(3)
        positions, world_axes = np.empty((n, 3)), np.empty((n, 3))
        for i in range(n):
            pos = pos + rot @ origins[i]
            positions[i], world_axes[i] = pos, rot @ axes[i]
            rot = rot @ local[i]
        return rot, positions, world_axes

    def forward(self, q: np.ndarray) -> np.ndarray:
        """The tool's pose as a (4, 4) homogeneous transform in the base frame."""
        rot, positions, _ = self._walk(q)
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rot, positions[-1] + rot @ self._arrays[4]
        return pose

    def position(self, q: np.ndarray) -> np.ndarray:
        """The tool point (3,) in metres."""
        return self.frames(q)[2]

    def position_jacobian(self, q: np.ndarray) -> np.ndarray:
        """d(tool position)/dq, (3, n): column i is axis_i x (tool - joint_i)."""
        positions, axes, tool = self.frames(q)
        return np.cross(axes, tool - positions).T


def ik_step(
    chain: KinematicChain,
    q: np.ndarray,
    target: np.ndarray,
    damping: float = 0.01,
    max_step: float = 0.2,
    active: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> np.ndarray:
    """One damped-least-squares step toward `target` (3,): dq = J^T (J J^T + damping^2 I)^-1 e.

    Only `active` joints move (a boolean mask; default all). A joint at a limit that the step
    would push further is frozen and the step recomputed without it, so the others make up for
    it; the result is clipped to [lower, upper] (default: the chain's limits) and each joint moves
    at most `max_step` radians.
    """
    q = np.asarray(q, dtype=float)
    lower = chain.lower if lower is None else lower
    upper = chain.upper if upper is None else upper
    free = np.ones(len(q), dtype=bool) if active is None else np.asarray(active, dtype=bool).copy()
    positions, axes, tool = chain.frames(q)
    error = np.asarray(target, dtype=float) - tool
    jac = np.cross(axes, tool - positions).T
    dq = np.zeros_like(q)
    for _ in range(len(q)):
        j = jac * free  # frozen joints: zero columns
        dq = j.T @ np.linalg.solve(j @ j.T + damping**2 * np.eye(3), error)
        pushing = ((q <= lower + 1e-9) & (dq < 0)) | ((q >= upper - 1e-9) & (dq > 0))
        if not (pushing & free).any():
            break
        free &= ~pushing
    largest = np.abs(dq).max()
    if largest > max_step:
        dq *= max_step / largest
    return np.clip(q + dq, lower, upper)


def inverse_kinematics(
    chain: KinematicChain,
    q0: np.ndarray,
    target: np.ndarray,
    tol: float = 1e-4,
    max_iters: int = 200,
    **step_kwargs,
) -> tuple[np.ndarray, float]:
    """Iterate `ik_step` from `q0` until the tool is within `tol` metres of `target` (3,).

    Returns (q, remaining distance); an unreachable target ends at the closest pose found within
    the limits.
    """
    q = np.asarray(q0, dtype=float)
    err = float(np.linalg.norm(np.asarray(target) - chain.position(q)))
    for _ in range(max_iters):
        if err <= tol:
            break
        q_next = ik_step(chain, q, target, **step_kwargs)
        err_next = float(np.linalg.norm(np.asarray(target) - chain.position(q_next)))
        if err_next > err - 1e-3 * tol:  # no progress: held by the limits or out of reach
            if err_next < err:
                q, err = q_next, err_next
            break
        q, err = q_next, err_next
    return q, err


def _deg(a: float) -> float:
    return float(np.deg2rad(a))


SO101_CHAIN = KinematicChain(
    joints=(
        RevoluteJoint("shoulder_pan", (0.0, 0.0, 0.0624), (0.0, 0.0, 1.0), _deg(-110), _deg(110)),
        RevoluteJoint("shoulder_lift", (0.0304, 0.0, 0.0542), (0.0, 1.0, 0.0), _deg(-100), _deg(100)),
        RevoluteJoint("elbow_flex", (0.028, 0.0, 0.1126), (0.0, 1.0, 0.0), _deg(-96.8), _deg(96.8)),
        RevoluteJoint("wrist_flex", (0.1349, 0.0, 0.0), (0.0, 1.0, 0.0), _deg(-95), _deg(95)),
        RevoluteJoint("wrist_roll", (0.0611, 0.0, 0.0), (1.0, 0.0, 0.0), _deg(-157), _deg(162)),
    ),
    tool=(0.098, 0.0, 0.0),
)
"""The SO-100 / SO-101 arm without its gripper jaw (the gripper is commanded directly)."""
