"""FAKES of the vendor SDK surfaces robokit uses for Stretch 3 (`stretch_body`) and Reachy 2
(`reachy2_sdk`). They stand in for hardware-bound SDKs that cannot run here; they record the calls
robokit makes so the tests check robokit's mapping of features to SDK calls, nothing more."""

from __future__ import annotations

import types


class FakeStretchPart:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def move_to(self, *args):
        self.log.append((self.name, "move_to", *args))


class FakeStretchBase(FakeStretchPart):
    def set_velocity(self, v_m, w_r):
        self.log.append(("base", "set_velocity", v_m, w_r))


class FakeStretchRobot:
    instances: list = []

    def __init__(self):
        self.log = []
        self.homed = False
        self.lift, self.arm = FakeStretchPart(self.log, "lift"), FakeStretchPart(self.log, "arm")
        self.head, self.end_of_arm = (
            FakeStretchPart(self.log, "head"),
            FakeStretchPart(self.log, "end_of_arm"),
        )
        self.base = FakeStretchBase(self.log, "base")
        self.status = {
            "lift": {"pos": 0.5},
            "arm": {"pos": 0.1},
            "head": {"head_pan": {"pos": 0.0}, "head_tilt": {"pos": -0.2}},
            "end_of_arm": {"wrist_yaw": {"pos": 1.0}, "stretch_gripper": {"pos": 0.0}},
            "base": {"x_vel": 0.0, "theta_vel": 0.0},
        }
        FakeStretchRobot.instances.append(self)

    def startup(self):
        self.log.append(("startup",))
        return True

    def is_homed(self):
        return self.homed

    def home(self):
        self.log.append(("home",))
        self.homed = True

    def get_status(self):
        return self.status

    def push_command(self):
        self.log.append(("push_command",))

    def stop(self):
        self.log.append(("stop",))


def stretch_body_modules() -> dict[str, types.ModuleType]:
    pkg = types.ModuleType("stretch_body")
    robot = types.ModuleType("stretch_body.robot")
    robot.Robot = FakeStretchRobot
    pkg.robot = robot
    return {"stretch_body": pkg, "stretch_body.robot": robot}


class FakeJoint:
    def __init__(self, present=0.0):
        self.present_position = present
        self.goal_position = None


class FakeNode:
    def __init__(self, **children):
        self.__dict__.update(children)


class FakeReachySDK:
    instances: list = []

    def __init__(self, host):
        self.host, self.log = host, []
        arm = lambda: FakeNode(
            shoulder=FakeNode(pitch=FakeJoint(), roll=FakeJoint()),  # noqa: E731
            elbow=FakeNode(yaw=FakeJoint(), pitch=FakeJoint(-90.0)),
            wrist=FakeNode(roll=FakeJoint(), pitch=FakeJoint(), yaw=FakeJoint()),
            gripper=FakeJoint(100.0),
        )
        self.r_arm, self.l_arm = arm(), arm()
        self.head = FakeNode(neck=FakeNode(roll=FakeJoint(), pitch=FakeJoint(), yaw=FakeJoint()))
        log = self.log
        self.mobile_base = FakeNode(
            odometry={"vx": 0.0, "vy": 0.0, "vtheta": 0.0},
            set_goal_speed=lambda *v: log.append(("set_goal_speed", *v)),
            send_speed_command=lambda: log.append(("send_speed_command",)),
        )
        FakeReachySDK.instances.append(self)

    def is_connected(self):
        return True

    def turn_on(self):
        self.log.append(("turn_on",))

    def send_goal_positions(self):
        self.log.append(("send_goal_positions",))

    def turn_off_smoothly(self):
        self.log.append(("turn_off_smoothly",))

    def disconnect(self):
        self.log.append(("disconnect",))


def reachy2_modules() -> dict[str, types.ModuleType]:
    mod = types.ModuleType("reachy2_sdk")
    mod.ReachySDK = FakeReachySDK
    return {"reachy2_sdk": mod}
