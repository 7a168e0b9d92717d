"""A PushT expert that plans pushes with the simulator itself as its model.

PushT is quasi-static: the block has full damping (it stops the moment it is not pushed), so
the world state is the block pose, the agent position and the agent's velocity. The expert
keeps a private copy of gym-pusht's pymunk world, syncs it from each observation (block pose
from the keypoints, agent position from the state, agent velocity from its own replay of the
actions it sent), and repeats:

1. Candidate pushes: a contact point on the T's outline, a push direction (the inward normal,
   or turned by +-25 degrees) and a push length.
2. Each candidate is simulated from "agent resting just outside the contact point"; its score
   is the block's remaining pose error (position + weighted angle), or success if the target
   coverage passes the env's 95% at any step, plus a small cost for the trip to get there.
3. The best push is executed: the agent travels around the block (along an outline inflated by
   a margin, so it does not touch it) to the contact point, then pushes as simulated.

Search is greedy (one push ahead), with finer pushes as the block nears the target.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from robokit.envs.experts.base import EpisodeScript, ScriptedExpert

# The T in its body frame (gym-pusht's geometry: a 120x30 bar and a 30x90 stem, scale 30).
# KEYPOINTS_LOCAL is the order in which the env reports keypoints (pymunk's vertex order).
KEYPOINTS_LOCAL = np.array([(-60.0, 0.0), (60.0, 0.0), (60.0, 30.0), (-60.0, 30.0),
                            (-15.0, 30.0), (15.0, 30.0), (15.0, 120.0), (-15.0, 120.0)])
OUTLINE = [(-60.0, 0.0), (60.0, 0.0), (60.0, 30.0), (15.0, 30.0), (15.0, 120.0), (-15.0, 120.0), (-15.0, 30.0), (-60.0, 30.0)]
GOAL = np.array([256.0, 256.0, math.pi / 4])
AGENT_RADIUS = 15.0
KP, KV, DT, SUBSTEPS = 100.0, 20.0, 0.01, 10
"""gym-pusht's PD gains, physics step and physics steps per action (10 Hz control)."""
ANGLE_WEIGHT = 70.0
"""Pixels of position error that one radian of angle error costs."""


def block_pose_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """(x, y, angle) of the block body from its 16 keypoint coordinates."""
    # Least-squares rigid fit (2-D Kabsch) of the body-frame keypoints onto the observed ones.
    kp = np.asarray(keypoints, dtype=np.float64).reshape(8, 2)
    local_mean, kp_mean = KEYPOINTS_LOCAL.mean(0), kp.mean(0)
    a, b = KEYPOINTS_LOCAL - local_mean, kp - kp_mean
    angle = math.atan2(float(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])), float(np.sum(a * b)))
    c, s = math.cos(angle), math.sin(angle)
    p = kp_mean - np.array([c * local_mean[0] - s * local_mean[1], s * local_mean[0] + c * local_mean[1]])
    return np.array([p[0], p[1], angle])


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def pose_error(pose: np.ndarray) -> float:
    return float(np.hypot(*(pose[:2] - GOAL[:2])) + ANGLE_WEIGHT * abs(_wrap(pose[2] - GOAL[2])))


def _to_world(pose: np.ndarray, local: np.ndarray) -> np.ndarray:
    c, s = math.cos(pose[2]), math.sin(pose[2])
    return np.stack([pose[0] + c * local[..., 0] - s * local[..., 1], pose[1] + s * local[..., 0] + c * local[..., 1]], -1)


def _contact_candidates() -> list[tuple[np.ndarray, np.ndarray]]:
    """(point, outward normal) pairs in the body frame, spread along the T's outline."""
    pts = np.array(OUTLINE)
    # Outline is listed clockwise in a y-up frame: the outward normal of edge a->b is (dy, -dx) rotated... check sign below.
    area = 0.5 * sum(pts[i, 0] * pts[(i + 1) % 8, 1] - pts[(i + 1) % 8, 0] * pts[i, 1] for i in range(8))
    out = []
    for i in range(8):
        a, b = pts[i], pts[(i + 1) % 8]
        edge = b - a
        length = float(np.hypot(*edge))
        normal = np.array([edge[1], -edge[0]]) / length
        if area < 0:
            normal = -normal
        n_points = max(1, int(round(length / 30.0)))
        for k in range(n_points):
            u = (k + 0.5) / n_points
            out.append((a + u * edge, normal))
    return out


CONTACTS = _contact_candidates()


@dataclass
class _Push:
    """One planned push: where to stand, and the action targets to send from there."""

    start: np.ndarray
    targets: list[np.ndarray]
    cost: float
    success: bool
    fine: bool = False
    direction: np.ndarray | None = None


class _Model:
    """A private copy of the PushT physics, set to observed states and stepped like the env."""

    def __init__(self):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from gym_pusht.envs.pusht import PushTEnv

        self.env = PushTEnv(obs_type="state")
        self.env.reset(seed=0)
        self.agent, self.block, self.space = self.env.agent, self.env.block, self.env.space

    def set_state(self, agent_pos, agent_vel, block_pose) -> None:
        self.agent.position = (float(agent_pos[0]), float(agent_pos[1]))
        self.agent.velocity = (float(agent_vel[0]), float(agent_vel[1]))
        self.block.position = (float(block_pose[0]), float(block_pose[1]))
        self.block.angle = float(block_pose[2])
        self.block.velocity = (0.0, 0.0)
        self.block.angular_velocity = 0.0

    def step(self, target) -> None:
        tx, ty = float(target[0]), float(target[1])
        agent, space = self.agent, self.space
        for _ in range(SUBSTEPS):
            px, py = agent.position
            vx, vy = agent.velocity
            agent.velocity = (vx + (KP * (tx - px) - KV * vx) * DT, vy + (KP * (ty - py) - KV * vy) * DT)
            space.step(DT)

    def block_pose(self) -> np.ndarray:
        return np.array([self.block.position[0], self.block.position[1], self.block.angle])

    def coverage(self) -> float:
        return float(self.env._get_coverage())


class _PushTScript(EpisodeScript):
    SPEED = 12.0
    """Agent target advance per step while pushing (px)."""
    TRAVEL_SPEED = 30.0
    """Agent target advance per step while travelling around the block (px)."""
    TRAVEL_COST = 0.15
    """Pose-error pixels that one pixel of travel to a contact point costs."""

    def __init__(self, model: _Model, rng: np.random.Generator):
        self.model = model
        self.rng = rng
        self.velocity = np.zeros(2)
        self.queue: list[np.ndarray] = []
        self.phase = "plan"
        self.push: _Push | None = None
        self.last_action: np.ndarray | None = None

    # -- model sync ----------------------------------------------------------------------------
    def _sync(self, agent, block_pose) -> None:
        self.model.set_state(agent, self.velocity, block_pose)

    # -- planning ------------------------------------------------------------------------------
    def _cost(self, block_pose: np.ndarray, fine: bool) -> tuple[float, bool]:
        """(cost, success) of a block pose: coverage near the target, pose error farther away."""
        if fine:
            cov = self.model.coverage()
            return -100.0 * cov, cov > 0.95
        return pose_error(block_pose), False

    def _simulate(self, agent, block_pose, start, direction, max_length, speed, fine) -> _Push:
        """Push from `start` along `direction`; the best stopping step of the push is kept."""
        self.model.set_state(start, (0.0, 0.0), block_pose)
        targets: list[np.ndarray] = []
        travel = self.TRAVEL_COST * float(np.hypot(*(start - agent)))
        best = _Push(start, [], np.inf, False)
        n = max(1, int(math.ceil((max_length + 6.0) / speed)))
        for k in range(1, n + 1):
            target = start + direction * (k * speed)
            targets.append(target)
            self.model.step(target)
            if k * speed < 6.0:  # not yet in contact
                continue
            cost, success = self._cost(self.model.block_pose(), fine)
            if success:
                return _Push(start, list(targets), -1e6, True, fine, direction)
            if cost + travel < best.cost:
                # Stop here: hold the last target (the agent settles, the block stops with it).
                best = _Push(start, [*targets, target, target], cost + travel, False, fine, direction)
        return best

    def _plan(self, agent, block_pose) -> _Push | None:
        fine = pose_error(block_pose) < 45.0
        speed, max_length = (4.0, 24.0) if fine else (12.0, 100.0)
        turns = (-0.5, -0.25, 0.0, 0.25, 0.5) if fine else (-0.45, 0.0, 0.45)
        current, _ = self._cost(block_pose, fine) if not fine else (None, None)
        if fine:
            self.model.set_state(agent, (0.0, 0.0), block_pose)
            current = -100.0 * self.model.coverage()
        pushes: list[_Push] = []
        for point, normal in CONTACTS:
            world_point = _to_world(block_pose, point)
            for turn in turns:
                c, s = math.cos(turn), math.sin(turn)
                d_local = -np.array([c * normal[0] - s * normal[1], s * normal[0] + c * normal[1]])
                world_dir = _to_world(np.array([0.0, 0.0, block_pose[2]]), d_local)
                start = world_point - world_dir * (AGENT_RADIUS + 4.0)
                if not (18.0 <= start[0] <= 494.0 and 18.0 <= start[1] <= 494.0):
                    continue
                push = self._simulate(agent, block_pose, start, world_dir, max_length, speed, fine)
                if push.success:
                    return push
                if push.targets:
                    pushes.append(push)
        if not pushes:
            return None
        pushes.sort(key=lambda p: p.cost)
        if pushes[0].cost >= current - 0.5:  # no push helps: try one of the better ones at random
            return pushes[int(self.rng.integers(min(5, len(pushes))))]
        return pushes[0]

    def _route(self, agent, goal, block_pose) -> list[np.ndarray]:
        """Targets that take the agent from `agent` to `goal` without touching the block."""
        import shapely.geometry as sg

        block = sg.Polygon(_to_world(block_pose, np.array(OUTLINE)))
        keep_out = block.buffer(AGENT_RADIUS + 3.0)
        path = sg.LineString([tuple(agent), tuple(goal)])
        if not path.intersects(keep_out.buffer(-0.5)):
            return self._straight(agent, goal)
        ring = block.buffer(AGENT_RADIUS + 14.0, join_style="mitre").exterior
        s_a, s_b, total = ring.project(sg.Point(*agent)), ring.project(sg.Point(*goal)), ring.length
        forward = (s_b - s_a) % total
        step = 20.0
        if forward <= total - forward:
            distances = [s_a + k for k in np.arange(0.0, forward, step)] + [s_b]
        else:
            distances = [s_a - k for k in np.arange(0.0, total - forward, step)] + [s_b]
        points = [np.clip(np.array(ring.interpolate(d % total).coords[0]), 18.0, 494.0) for d in distances]
        return [*points, np.asarray(goal, dtype=np.float64)]

    def _straight(self, a, b) -> list[np.ndarray]:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        n = max(1, int(math.ceil(np.hypot(*(b - a)) / self.TRAVEL_SPEED)))
        return [a + (b - a) * (k / n) for k in range(1, n + 1)]

    def _refine(self, agent, block_pose) -> np.ndarray | None:
        """Near the target, push step by step: the best small move of the agent's target along
        (or beside) the push direction, judged by the coverage two steps ahead from the exact
        current state; None when no move beats standing still (then a new push is planned)."""
        direction = self.push.direction
        side = np.array([-direction[1], direction[0]])
        base = self.last_action if self.last_action is not None else agent
        best_action, best_cov, hold_cov = None, -1.0, None
        for advance in (0.0, 2.0, 4.0, 7.0):
            for lateral in ((0.0,) if advance == 0.0 else (-3.0, 0.0, 3.0)):
                target = base + direction * advance + side * lateral
                self._sync(agent, block_pose)
                self.model.step(target)
                cov = self.model.coverage()
                if cov <= 0.95:
                    self.model.step(target)
                    cov = max(cov, self.model.coverage())
                if advance == 0.0:
                    hold_cov = cov
                if cov > best_cov:
                    best_action, best_cov = target, cov
        if best_action is None or best_cov <= hold_cov + 1e-4 and best_cov <= 0.95:
            # Not yet touching the block (it starts a few pixels away): close the gap first.
            if float(np.dot(base - self.push.start, direction)) < 6.0:
                return base + direction * 3.0
            return None
        return best_action

    # -- acting --------------------------------------------------------------------------------
    def act(self, obs) -> np.ndarray:
        agent = np.asarray(obs["observation.state"], dtype=np.float64)
        block_pose = block_pose_from_keypoints(obs["observation.environment_state"])
        action = self._next_action(agent, block_pose)
        # Replay the action in the model from the observed state, to know the agent's velocity next step.
        self._sync(agent, block_pose)
        self.model.step(action)
        self.velocity = np.array(self.model.agent.velocity)
        self.last_action = action
        return action

    def _next_action(self, agent, block_pose) -> np.ndarray:
        for _ in range(3):
            if self.phase == "plan":
                self.push = self._plan(agent, block_pose)
                if self.push is None:  # nothing reachable: nudge the agent to a random spot
                    self.queue = self._straight(agent, self.rng.uniform(60, 450, size=2))
                    self.phase = "travel_only"
                else:
                    route = self._route(agent, self.push.start, block_pose)
                    self.queue = route
                    self.phase = "travel"
            if self.phase in ("travel", "travel_only"):
                if self.queue:
                    return self.queue.pop(0)
                if self.phase == "travel_only":
                    self.phase = "plan"
                    continue
                # Arrived: wait until the agent rests at the contact point, then push.
                if np.hypot(*(agent - self.push.start)) > 2.0 or np.hypot(*self.velocity) > 15.0:
                    return self.push.start.copy()
                self.queue = list(self.push.targets)
                self.phase = "push"
            if self.phase == "push":
                if self.push.fine:
                    action = self._refine(agent, block_pose)
                    if action is not None:
                        return action
                elif self.queue:
                    return self.queue.pop(0)
                self.phase = "plan"
        return agent.copy()


class PushTExpert(ScriptedExpert):
    """Pushes the T onto the target by planning pushes in a private copy of the simulator."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self._seed = seed
        self._model: _Model | None = None
        self._episodes = 0

    def new_episode(self, obs):
        if self._model is None:
            self._model = _Model()
        self._episodes += 1
        return _PushTScript(self._model, np.random.default_rng([self._seed, self._episodes]))
