"""Scripted bimanual experts for ALOHA transfer-cube and insertion.

As in the ACT paper's scripted data: plan end-effector waypoints from the object poses at the
start of the episode (approach, grasp, lift, meet, hand over / insert), move each gripper
along them, and record joint-space actions. Here the end-effector path is turned into joint
targets by inverse kinematics on a private copy of the MuJoCo model (dm_control's
damped least-squares solver, warm-started from the arm's current joints), so the recorded
actions are exactly what a joint-space policy must output. The insertion script closes the
loop on the observed peg and socket poses to line the peg up before pushing it in.

Waypoint frame: a gripper pose is the position of the point between the fingertips plus
(yaw, pitch, roll): yaw turns the approach axis about the world z axis, pitch tilts it down
(pi/2 = pointing straight down), roll turns the fingers about the approach axis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from robokit.envs.experts.base import EpisodeScript, ScriptedExpert

GRASP_OFFSET = 0.135
"""Distance (m) from the gripper_link frame to the grasp point between the fingertips."""
SITE_OFFSET = 0.15
"""Distance from gripper_link to the model's `cali_<side>_site1`, the IK site."""
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
OPEN, CLOSED = 1.0, 0.0


class _DropIKConvergenceWarnings(logging.Filter):
    """dm_control's IK logs each unconverged solve; a warm-started solve that stops near the
    target is normal here (the next step refines it), so those lines are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_DropIKConvergenceWarnings())


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(yaw) @ Ry(pitch) @ Rx(roll): columns are the gripper's approach, finger and normal axes."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Waypoint:
    """Where one gripper should be at step `t`."""

    t: int
    pos: tuple[float, float, float]
    yaw: float
    pitch: float
    roll: float = 0.0
    grip: float = OPEN
    """Normalized gripper command: 1 open, 0 closed."""


def interpolate(waypoints: list[Waypoint], t: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(position, rotation matrix, grip) at step t, linear between waypoints (held after the last)."""
    if t <= waypoints[0].t:
        w = waypoints[0]
        return np.array(w.pos), rotation(w.yaw, w.pitch, w.roll), w.grip
    for a, b in zip(waypoints, waypoints[1:]):
        if t <= b.t:
            u = (t - a.t) / max(b.t - a.t, 1)
            # Smooth start and stop of each segment (cosine easing): gentler on grasped objects.
            u = 0.5 - 0.5 * np.cos(np.pi * u)
            lerp = lambda x, y: (1 - u) * np.asarray(x, dtype=float) + u * np.asarray(y, dtype=float)
            pos = lerp(a.pos, b.pos)
            yaw, pitch, roll = (float(lerp(getattr(a, k), getattr(b, k))) for k in ("yaw", "pitch", "roll"))
            return pos, rotation(yaw, pitch, roll), float(lerp(a.grip, b.grip))
    w = waypoints[-1]
    return np.array(w.pos), rotation(w.yaw, w.pitch, w.roll), w.grip


class BimanualIK:
    """Inverse kinematics for the two ViperX arms on a private copy of the task's model."""

    def __init__(self, xml_name: str):
        from dm_control import mujoco as dm_mujoco
        from gym_aloha.constants import ASSETS_DIR

        self.physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / xml_name))

    def _joints(self, side: str) -> list[str]:
        return [f"vx300s_{side}/{j}" for j in ARM_JOINTS]

    def forward(self, side: str, arm_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp-point position and rotation matrix of `side`'s gripper at joints `arm_q`."""
        self.physics.named.data.qpos[self._joints(side)] = arm_q
        self.physics.forward()
        rot = self.physics.named.data.xmat[f"vx300s_{side}/gripper_link"].reshape(3, 3).copy()
        pos = self.physics.named.data.xpos[f"vx300s_{side}/gripper_link"] + rot[:, 0] * GRASP_OFFSET
        return pos.copy(), rot

    def solve(self, side: str, pos: np.ndarray, rot: np.ndarray, arm_q: np.ndarray) -> np.ndarray:
        """Joint angles (6,) putting `side`'s grasp point at `pos` with orientation `rot`, near `arm_q`."""
        import mujoco
        from dm_control.utils import inverse_kinematics

        joints = self._joints(side)
        self.physics.named.data.qpos[joints] = arm_q
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot).reshape(-1))
        site_pos = pos + rot[:, 0] * (SITE_OFFSET - GRASP_OFFSET)
        result = inverse_kinematics.qpos_from_site_pose(
            self.physics, f"cali_{side}_site1", target_pos=site_pos, target_quat=quat, joint_names=joints,
            tol=1e-10, max_steps=60, inplace=True)
        return np.asarray(self.physics.named.data.qpos[joints]).copy() if result.success or result.err_norm < 0.05 else arm_q


class _BimanualScript(EpisodeScript):
    """Follows a waypoint plan for both arms; subclasses make the plan and may adjust it online."""

    xml_name = ""

    def __init__(self, obs: dict[str, np.ndarray], ik: BimanualIK):
        self.ik = ik
        self.t = 0
        state = np.asarray(obs["observation.state"], dtype=np.float64)
        self.q = {"left": state[0:6].copy(), "right": state[7:13].copy()}
        start = {side: self.ik.forward(side, self.q[side]) for side in ("left", "right")}
        self.plan = self.make_plan(np.asarray(obs["observation.environment_state"], dtype=np.float64), start)

    def make_plan(self, env_state: np.ndarray, start: dict) -> dict[str, list[Waypoint]]:
        raise NotImplementedError

    def correction(self, side: str, obs: dict[str, np.ndarray]) -> np.ndarray:
        """An offset added to `side`'s planned position at this step (closed-loop scripts)."""
        return np.zeros(3)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action = np.zeros(14, dtype=np.float64)
        for side, base in (("left", 0), ("right", 7)):
            pos, rot, grip = interpolate(self.plan[side], self.t + 1)
            pos = pos + self.correction(side, obs)
            self.q[side] = self.ik.solve(side, pos, rot, self.q[side])
            action[base:base + 6] = self.q[side]
            action[base + 6] = grip
        self.t += 1
        return action


def _start_waypoint(start: tuple[np.ndarray, np.ndarray], yaw: float) -> Waypoint:
    pos, rot = start
    pitch = float(np.arcsin(np.clip(-rot[2, 0], -1, 1)))
    return Waypoint(0, tuple(pos), yaw=yaw, pitch=pitch)


class TransferCubeScript(_BimanualScript):
    """Right arm picks the cube from above and lifts it to the middle; left arm takes it from the side."""

    def make_plan(self, env_state, start):
        cube = env_state[:3]
        x, y = float(cube[0]), float(cube[1])
        meet = np.array([0.0, 0.5, 0.25])
        down = np.pi / 2 * 0.8
        right = [
            _start_waypoint(start["right"], np.pi),
            Waypoint(80, (x, y, 0.12), yaw=np.pi, pitch=down),
            Waypoint(120, (x, y, 0.022), yaw=np.pi, pitch=down),
            Waypoint(135, (x, y, 0.022), yaw=np.pi, pitch=down, grip=CLOSED),
            Waypoint(150, (x, y, 0.022), yaw=np.pi, pitch=down, grip=CLOSED),
            Waypoint(230, tuple(meet + [0.02, 0, 0]), yaw=np.pi, pitch=np.pi / 4, grip=CLOSED),
            Waypoint(330, tuple(meet + [0.02, 0, 0]), yaw=np.pi, pitch=np.pi / 4, grip=CLOSED),
            Waypoint(360, tuple(meet + [0.02, 0, 0]), yaw=np.pi, pitch=np.pi / 4, grip=OPEN),
        ]
        # The left gripper is rolled 90 degrees so that its fingers close on the cube's top and
        # bottom faces while the right gripper's fingers hold its sides (as in the ACT paper).
        # Its waypoints are relative to where the cube should be; `correction` shifts them to
        # where the cube really is in the right gripper.
        self.cube_nominal = meet
        left = [
            _start_waypoint(start["left"], 0.0),
            Waypoint(150, tuple(meet + [-0.15, 0, 0]), yaw=0.0, pitch=0.0, roll=np.pi / 2),
            Waypoint(230, tuple(meet + [-0.15, 0, 0]), yaw=0.0, pitch=0.0, roll=np.pi / 2),
            Waypoint(280, tuple(meet + [-0.005, 0, 0]), yaw=0.0, pitch=0.0, roll=np.pi / 2),
            Waypoint(300, tuple(meet + [-0.005, 0, 0]), yaw=0.0, pitch=0.0, roll=np.pi / 2, grip=CLOSED),
            Waypoint(400, tuple(meet + [-0.05, 0, 0.02]), yaw=0.0, pitch=0.0, roll=np.pi / 2, grip=CLOSED),
        ]
        self._offset = np.zeros(3)
        return {"left": left, "right": right}

    def correction(self, side, obs):
        if side == "left" and 200 <= self.t < 285:
            cube = np.asarray(obs["observation.environment_state"][:3], dtype=np.float64)
            self._offset = cube - self.cube_nominal
        return self._offset if side == "left" else np.zeros(3)


class InsertionScript(_BimanualScript):
    """Both arms pick from above (peg right, socket left), lift to the middle, and the peg goes in.

    The grippers keep their grasp orientation (turning a gripper would tilt what it holds).
    While the peg approaches, the right gripper's target is servoed on the observed poses:
    the peg is put at (socket position + an x offset that shrinks to the insertion depth),
    using the measured grasp-point-to-peg offset, so grasp slips and socket sway are absorbed.
    """

    PITCH = np.pi / 2 * 0.95
    INSERT_START, INSERT_END = 270, 370
    START_GAP, END_GAP = 0.20, 0.085
    """Peg centre minus socket centre along x at the start / end of the insertion (pin touch near 0.10)."""

    def make_plan(self, env_state, start):
        peg, socket = env_state[:3], env_state[7:10]
        pitch = self.PITCH
        self.socket_goal = np.array([-0.07, 0.5, 0.2])
        peg_lift = self.socket_goal + [self.START_GAP, 0.0, 0.0]
        right = [
            _start_waypoint(start["right"], np.pi),
            Waypoint(80, (peg[0], peg[1], 0.10), yaw=np.pi, pitch=pitch),
            Waypoint(120, (peg[0], peg[1], 0.012), yaw=np.pi, pitch=pitch),
            Waypoint(135, (peg[0], peg[1], 0.012), yaw=np.pi, pitch=pitch, grip=CLOSED),
            Waypoint(150, (peg[0], peg[1], 0.012), yaw=np.pi, pitch=pitch, grip=CLOSED),
            Waypoint(230, tuple(peg_lift), yaw=np.pi, pitch=pitch, grip=CLOSED),
        ]
        left = [
            _start_waypoint(start["left"], 0.0),
            Waypoint(80, (socket[0], socket[1], 0.10), yaw=0.0, pitch=pitch),
            Waypoint(120, (socket[0], socket[1], 0.02), yaw=0.0, pitch=pitch),
            Waypoint(135, (socket[0], socket[1], 0.02), yaw=0.0, pitch=pitch, grip=CLOSED),
            Waypoint(150, (socket[0], socket[1], 0.02), yaw=0.0, pitch=pitch, grip=CLOSED),
            Waypoint(230, tuple(self.socket_goal), yaw=0.0, pitch=pitch, grip=CLOSED),
        ]
        return {"left": left, "right": right}

    def act(self, obs):
        if self.t < self.INSERT_START - 20:
            return super().act(obs)
        env_state = np.asarray(obs["observation.environment_state"], dtype=np.float64)
        peg, socket = env_state[:3], env_state[7:10]
        u = np.clip((self.t - self.INSERT_START) / (self.INSERT_END - self.INSERT_START), 0.0, 1.0)
        gap = (1 - u) * self.START_GAP + u * self.END_GAP
        # The offset of the peg in the gripper, from the measured joints (not the commanded ones,
        # which lead them: servoing on those oscillates).
        measured_q = np.asarray(obs["observation.state"][7:13], dtype=np.float64)
        grasp_now, _ = self.ik.forward("right", measured_q)
        grasp_target = socket + [gap, 0.0, 0.0] + (grasp_now - peg)
        action = np.zeros(14)
        pos, rot, grip = interpolate(self.plan["left"], self.t + 1)
        self.q["left"] = self.ik.solve("left", pos, rot, self.q["left"])
        action[0:6], action[6] = self.q["left"], grip
        self.q["right"] = self.ik.solve("right", grasp_target, rotation(np.pi, self.PITCH, 0.0), self.q["right"])
        action[7:13], action[13] = self.q["right"], CLOSED
        self.t += 1
        return action


class AlohaExpert(ScriptedExpert):
    """The scripted expert of `aloha_transfer_cube` or `aloha_insertion` (policy-like)."""

    def __init__(self, env_name: str):
        super().__init__()
        if env_name not in ("aloha_transfer_cube", "aloha_insertion"):
            raise ValueError(f"AlohaExpert: env_name={env_name!r}, expected 'aloha_transfer_cube' or 'aloha_insertion'")
        self.env_name = env_name
        xml = "bimanual_viperx_transfer_cube.xml" if env_name == "aloha_transfer_cube" else "bimanual_viperx_insertion.xml"
        self._ik = BimanualIK(xml)
        self._script_cls = TransferCubeScript if env_name == "aloha_transfer_cube" else InsertionScript

    def new_episode(self, obs):
        return self._script_cls(obs, self._ik)
