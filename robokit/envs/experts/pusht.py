"""A PushT expert that plans pushes with the simulator itself as its model.

PushT is quasi-static: the block has full damping (it stops the moment it is not pushed), and
the agent is a kinematic disc that passes through the walls but not through the block. So the
world state is the block pose, the agent position and the agent's velocity. The expert keeps
a private copy of gym-pusht's pymunk world, syncs it from each observation (block pose from
the keypoints, agent position from the state, agent velocity from its own replay of the
actions it sent), and repeats:

1. Candidate pushes: a contact point on the T's outline, a push direction (the inward normal,
   or turned to either side) and a push length. Each is simulated from "agent resting just
   outside the contact point"; every stopping point along the push is scored *with* the steps
   the agent needs to come to rest there (it trails its target), by the block's keypoint error
   (mean distance of the T's 8 corners to the target's), plus a small cost for the trip to
   the contact point. A push that reaches gym-pusht's success (coverage > 95%) wins at once.
2. When no single push improves the error (a local minimum: the block against a wall, or a
   large turn needed), the best few first pushes are scored by the best push that can follow
   them (two-push lookahead).
3. The chosen push is executed: the agent travels around the block (along an outline inflated
   by a margin, so it does not touch it) to the contact point, settles, re-checks the push
   from the exact current state, then pushes.

Far from the target the pushes are long and fast; near it they are short, slow and finely
steered, which gives the pixel-level alignment that 95% coverage needs.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from robokit.envs.experts.base import EpisodeScript, ScriptedExpert

# The T in its body frame (gym-pusht's geometry: a 120x30 bar and a 30x90 stem, scale 30).
# KEYPOINTS_LOCAL is the order in which the env reports keypoints (pymunk's vertex order).
KEYPOINTS_LOCAL = np.array([(-60.0, 0.0), (60.0, 0.0), (60.0, 30.0), (-60.0, 30.0),
                            (-15.0, 30.0), (15.0, 30.0), (15.0, 120.0), (-15.0, 120.0)])
OUTLINE = [(-60.0, 0.0), (60.0, 0.0), (60.0, 30.0), (15.0, 30.0), (15.0, 120.0), (-15.0, 120.0),
           (-15.0, 30.0), (-60.0, 30.0)]
GOAL = np.array([256.0, 256.0, math.pi / 4])
AGENT_RADIUS = 15.0
KP, KV, DT, SUBSTEPS = 100.0, 20.0, 0.01, 10
"""gym-pusht's PD gains, physics step and physics steps per action (10 Hz control)."""
_log = logging.getLogger(__name__)
SUCCESS_COVERAGE = 0.95
"""gym-pusht's success threshold (coverage strictly above it)."""
PLAN_MARGIN = 0.01
"""Coverage margin a planned push must reach, so that it still succeeds from the real state."""
BOUNDS = (2.0, 510.0)
"""Where the agent may be sent (the action space is [0, 512]; the agent passes through walls)."""


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


def _to_world(pose: np.ndarray, local: np.ndarray) -> np.ndarray:
    c, s = math.cos(pose[2]), math.sin(pose[2])
    return np.stack([pose[0] + c * local[..., 0] - s * local[..., 1], pose[1] + s * local[..., 0] + c * local[..., 1]], -1)


GOAL_KEYPOINTS = _to_world(GOAL, KEYPOINTS_LOCAL)


def keypoint_error(pose: np.ndarray) -> float:
    """Mean distance (px) of the block's 8 corners to the target's: position and angle in one unit."""
    return float(np.mean(np.hypot(*(_to_world(pose, KEYPOINTS_LOCAL) - GOAL_KEYPOINTS).T)))


def _contacts(spacing: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(point, outward normal) pairs in the body frame, about `spacing` apart along the outline."""
    pts = np.array(OUTLINE)
    area = 0.5 * sum(pts[i, 0] * pts[(i + 1) % 8, 1] - pts[(i + 1) % 8, 0] * pts[i, 1] for i in range(8))
    out = []
    for i in range(8):
        a, b = pts[i], pts[(i + 1) % 8]
        edge = b - a
        length = float(np.hypot(*edge))
        normal = np.array([edge[1], -edge[0]]) / length
        if area < 0:
            normal = -normal
        n_points = max(1, round(length / spacing))
        for k in range(n_points):
            out.append((a + (k + 0.5) / n_points * edge, normal))
    return out


@dataclass(frozen=True)
class _Stage:
    """Push parameters for one distance regime."""

    speed: float
    """Agent target advance per step while pushing (px)."""
    max_length: float
    """Longest push (px of target travel after contact)."""
    turns: tuple[float, ...]
    """Push directions relative to the inward normal (rad)."""
    contacts: list = field(hash=False, compare=False)
    """Contact points (body frame) with their outward normals."""
    branch_every: int
    """Score a stopping point every this many steps of a push."""
    travel_cost: float
    """Keypoint-error px that one px of travel to the contact point costs."""


COARSE = _Stage(12.0, 120.0, (-0.5, 0.0, 0.5), _contacts(15.0), 2, 0.04)
MEDIUM = _Stage(6.0, 48.0, (-0.5, 0.0, 0.5), _contacts(10.0), 1, 0.02)
FINE = _Stage(2.5, 20.0, (-0.7, -0.35, 0.0, 0.35, 0.7), _contacts(7.5), 1, 0.005)
HOLD_STEPS = 2
"""Steps a push holds its last target, so that the agent (which trails its target) stops."""


def _stage(error: float) -> _Stage:
    return COARSE if error > 40.0 else MEDIUM if error > 10.0 else FINE


@dataclass
class _Push:
    """One planned push: where to stand, the targets to send from there, and its predicted outcome."""

    start: np.ndarray
    direction: np.ndarray
    targets: list[np.ndarray]
    cost: float
    success: bool = False
    end: tuple | None = None


class _Model:
    """A private copy of the PushT physics, set to observed states and stepped like the env."""

    def __init__(self):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from gym_pusht.envs.pusht import PushTEnv

        self.env = PushTEnv(obs_type="state")
        self.env.reset(seed=0)
        self.agent, self.block, self.space = self.env.agent, self.env.block, self.env.space

    def set_state(self, agent_pos, agent_vel, block_pose, block_vel=(0.0, 0.0, 0.0)) -> None:
        """Block velocity matters: pymunk moves bodies by their last solved velocity before the
        (full) damping clears it, so a block that was being pushed keeps going one substep."""
        self.agent.position = (float(agent_pos[0]), float(agent_pos[1]))
        self.agent.velocity = (float(agent_vel[0]), float(agent_vel[1]))
        # Angle first: pymunk turns a body about its centre of gravity, which is not the T's origin.
        self.block.angle = float(block_pose[2])
        self.block.position = (float(block_pose[0]), float(block_pose[1]))
        self.block.velocity = (float(block_vel[0]), float(block_vel[1]))
        self.block.angular_velocity = float(block_vel[2])
        # Forget cached contacts (pymunk warm-starts its solver from them): a contact left over from
        # another simulated push would otherwise act on this one.
        self.space.remove(*self.block.shapes)
        self.space.add(*self.block.shapes)

    def state(self) -> tuple:
        return (tuple(self.agent.position), tuple(self.agent.velocity), self.block_pose(), self.block_velocity())

    def block_velocity(self) -> np.ndarray:
        return np.array([self.block.velocity[0], self.block.velocity[1], self.block.angular_velocity])

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
    TRAVEL_SPEED = 22.0
    """Agent target advance per step while travelling around the block (px)."""
    MIN_GAIN = 0.2
    """Keypoint-error px a push must gain to count as progress."""

    def __init__(self, model: _Model, rng: np.random.Generator):
        self.model = model
        self.rng = rng
        self.velocity = np.zeros(2)
        self.block_velocity = np.zeros(3)
        self.queue: list[np.ndarray] = []
        self.phase = "plan"
        self.push: _Push | None = None
        self.wait = 0
        self.success_coverage = SUCCESS_COVERAGE + PLAN_MARGIN

    # -- planning ------------------------------------------------------------------------------
    def _score(self, pose: np.ndarray) -> tuple[float, bool]:
        error = keypoint_error(pose)
        return error, error < 12.0 and self.model.coverage() > self.success_coverage

    def _simulate(self, agent_state, block_pose, start, direction, stage: _Stage, travel: float) -> _Push:
        """Push from `start` along `direction`; the best stopping step (with its holds) is kept.
        `agent_state` is (position, velocity[, block velocity])."""
        self.model.set_state(agent_state[0], agent_state[1], block_pose, *agent_state[2:])
        extra = stage.travel_cost * travel
        best = _Push(start, direction, [], np.inf)
        targets: list[np.ndarray] = []
        n = max(1, math.ceil((stage.max_length + 6.0) / stage.speed))
        moved = False
        for k in range(1, n + 1):
            target = start + direction * (k * stage.speed)
            targets.append(target)
            self.model.step(target)
            if not moved:
                pose = self.model.block_pose()
                moved = abs(pose[0] - block_pose[0]) + abs(pose[1] - block_pose[1]) + abs(pose[2] - block_pose[2]) > 1e-6
                if not moved:
                    continue
            if k % stage.branch_every and k != n:
                continue
            saved = self.model.state()
            for h in range(HOLD_STEPS):
                self.model.step(target)
                cost, success = self._score(self.model.block_pose())
                if success:
                    return _Push(start, direction, [*targets, *[target] * (h + 1)], -1e6, True)
            if cost + extra < best.cost:
                best = _Push(start, direction, [*targets, *[target] * HOLD_STEPS], cost + extra, False, self.model.state())
            self.model.set_state(*saved)
            if success := self._score(self.model.block_pose())[1]:
                return _Push(start, direction, list(targets), -1e6, True)
        return best

    def _candidates(self, agent, block_pose, stage: _Stage) -> list[_Push]:
        import shapely.geometry as sg

        block = sg.Polygon(_to_world(block_pose, np.array(OUTLINE)))
        rot = np.array([0.0, 0.0, block_pose[2]])
        pushes: list[_Push] = []
        for point, normal in stage.contacts:
            world_point = _to_world(block_pose, point)
            for turn in stage.turns:
                c, s = math.cos(turn), math.sin(turn)
                d_local = -np.array([c * normal[0] - s * normal[1], s * normal[0] + c * normal[1]])
                direction = _to_world(rot, d_local)
                start = world_point - direction * (AGENT_RADIUS + 3.0)
                if not (BOUNDS[0] <= start[0] <= BOUNDS[1] and BOUNDS[0] <= start[1] <= BOUNDS[1]):
                    continue
                if block.distance(sg.Point(*start)) < AGENT_RADIUS + 1.0:
                    continue
                travel = float(np.hypot(*(start - agent)))
                push = self._simulate((start, (0.0, 0.0)), block_pose, start, direction, stage, travel)
                if push.success:
                    return [push]
                if push.targets:
                    pushes.append(push)
        pushes.sort(key=lambda p: p.cost)
        return pushes

    def _plan(self, agent, block_pose) -> _Push | None:
        error = keypoint_error(block_pose)
        stage = _stage(error)
        pushes = self._candidates(agent, block_pose, stage)
        if not pushes or pushes[0].success or pushes[0].cost < error - self.MIN_GAIN:
            return pushes[0] if pushes else None
        # Local minimum: look two pushes ahead from the most promising distinct first pushes.
        best, best_cost = None, math.inf
        for first in pushes[:6]:
            pose = first.end[2]
            if keypoint_error(pose) > error + 40.0:
                continue
            follow = self._candidates(first.end[0], pose, _stage(keypoint_error(pose)))
            if follow and (follow[0].success or follow[0].cost < best_cost):
                best, best_cost = first, (-1e6 if follow[0].success else follow[0].cost)
        if best is not None and best_cost < error - self.MIN_GAIN:
            return best
        return pushes[int(self.rng.integers(min(5, len(pushes))))]

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
        step = 16.0
        if forward <= total - forward:
            distances = [s_a + k for k in np.arange(0.0, forward, step)] + [s_b]
        else:
            distances = [s_a - k for k in np.arange(0.0, total - forward, step)] + [s_b]
        points = [np.clip(np.array(ring.interpolate(d % total).coords[0]), *BOUNDS) for d in distances]
        return [*points, np.asarray(goal, dtype=np.float64)]

    def _straight(self, a, b) -> list[np.ndarray]:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        n = max(1, math.ceil(np.hypot(*(b - a)) / self.TRAVEL_SPEED))
        return [a + (b - a) * (k / n) for k in range(1, n + 1)]

    def _recheck(self, agent, block_pose, stage: _Stage) -> _Push:
        """The planned push simulated from the exact current state; when it no longer succeeds,
        slightly turned and shifted variants of it (the real agent is never exactly at rest)."""
        self.success_coverage = SUCCESS_COVERAGE
        try:
            state = (agent, self.velocity, self.block_velocity)
            push = self._simulate(state, block_pose, self.push.start, self.push.direction, stage, 0.0)
            if push.success or not self.push.success:
                return push
            d = self.push.direction
            side = np.array([-d[1], d[0]])
            for turn in (0.03, -0.03, 0.07, -0.07, 0.12, -0.12):
                for shift in (0.0, 1.5, -1.5):
                    c, s = math.cos(turn), math.sin(turn)
                    direction = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
                    variant = self._simulate(state, block_pose, self.push.start + side * shift, direction, stage, 0.0)
                    if variant.success:
                        return variant
            return push
        finally:
            self.success_coverage = SUCCESS_COVERAGE + PLAN_MARGIN

    def _coverage_of(self, pose) -> float:
        self.model.set_state((0.0, 0.0), (0.0, 0.0), pose)
        return self.model.coverage()

    # -- acting --------------------------------------------------------------------------------
    def act(self, obs) -> np.ndarray:
        agent = np.asarray(obs["observation.state"], dtype=np.float64)
        block_pose = block_pose_from_keypoints(obs["observation.environment_state"])
        action = np.clip(self._next_action(agent, block_pose), 0.0, 512.0)
        # Replay the action in the model from the observed state, to know the agent's velocity next step.
        self.model.set_state(agent, self.velocity, block_pose, self.block_velocity)
        self.model.step(action)
        self.velocity = np.array(self.model.agent.velocity)
        self.block_velocity = self.model.block_velocity()
        return action

    def _next_action(self, agent, block_pose) -> np.ndarray:
        for _ in range(3):
            if self.phase == "plan":
                self.push = self._plan(agent, block_pose)
                if _log.isEnabledFor(logging.DEBUG):
                    _log.debug("plan: error %.2f coverage %.3f -> %s", keypoint_error(block_pose), self._coverage_of(block_pose),
                               None if self.push is None else (round(self.push.cost, 2), self.push.success))
                if self.push is None:  # nothing reachable: move the agent to a random spot
                    self.queue = self._straight(agent, self.rng.uniform(60, 450, size=2))
                    self.phase = "wander"
                else:
                    self.queue = self._route(agent, self.push.start, block_pose)
                    self.phase, self.wait, self.plan_pose = "travel", 0, block_pose
            if self.phase in ("travel", "wander"):
                if self.queue:
                    return self.queue.pop(0)
                if self.phase == "wander":
                    self.phase = "plan"
                    continue
                # Arrived: let the agent settle at the contact point, then re-check the push from
                # the exact current state (the block may have been nudged on the way).
                stage = _stage(keypoint_error(self.plan_pose))
                tolerance = 0.5 if stage is FINE else 2.0
                if (np.hypot(*(agent - self.push.start)) > tolerance or np.hypot(*self.velocity) > 10 * tolerance) and self.wait < 15:
                    self.wait += 1
                    return self.push.start.copy()
                error = keypoint_error(block_pose)
                push = self._recheck(agent, block_pose, stage)
                _log.debug("recheck after %d waits: success %s, cost %.2f", self.wait, push.success, push.cost)
                if not push.targets or not (push.success or push.cost < error - 0.05):
                    self.phase = "plan"
                    continue
                self.queue = list(push.targets)
                self.phase = "push"
            if self.phase == "push":
                if self.queue:
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
