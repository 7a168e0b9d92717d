"""Robots and teleoperators by type name, and the servo layouts `robokit virtual-arm` emulates."""

from __future__ import annotations

import difflib
import importlib

from robokit.errors import UsageError

ROBOTS: dict[str, str] = {
    "so101_follower": "robokit.robots.so101:SO101Follower",
    "so100_follower": "robokit.robots.so101:SO100Follower",
    "moss_follower": "robokit.robots.so101:MossFollower",
    "koch_follower": "robokit.robots.koch:KochFollower",
    "bi_so101_follower": "robokit.robots.bimanual:BimanualSO101Follower",
    "viperx": "robokit.robots.aloha:ViperXFollower",
    "aloha": "robokit.robots.aloha:AlohaFollower",
    "lekiwi": "robokit.robots.lekiwi:LeKiwi",
    "lekiwi_client": "robokit.robots.lekiwi_remote:LeKiwiClient",
    "hope_jr_arm": "robokit.robots.hope_jr:HopeJrArm",
    "hope_jr_hand": "robokit.robots.hope_jr:HopeJrHand",
    "stretch3": "robokit.robots.stretch:Stretch3",
    "reachy2": "robokit.robots.reachy2:Reachy2",
    "sim": "robokit.envs.sim_robot:SimRobot",  # a simulated env behind the Robot API (robokit.envs)
}
TELEOPERATORS: dict[str, str] = {
    "so101_leader": "robokit.robots.so101:SO101Leader",
    "so100_leader": "robokit.robots.so101:SO100Leader",
    "moss_leader": "robokit.robots.so101:MossLeader",
    "koch_leader": "robokit.robots.koch:KochLeader",
    "bi_so101_leader": "robokit.robots.bimanual:BimanualSO101Leader",
    "widowx": "robokit.robots.aloha:WidowXLeader",
    "aloha_leader": "robokit.robots.aloha:AlohaLeader",
    "lekiwi_leader": "robokit.teleoperators.lekiwi_leader:LeKiwiLeader",
    "keyboard": "robokit.teleoperators.keyboard:KeyboardTeleop",
    "gamepad": "robokit.teleoperators.keyboard:GamepadTeleop",
    "homunculus_glove": "robokit.teleoperators.homunculus_glove:HomunculusGlove",
}
# virtual-arm name -> the device type whose servo layout is emulated
VIRTUAL_ARMS: dict[str, str] = {
    "so101": "so101_follower",
    "so101_leader": "so101_leader",
    "so100": "so100_follower",
    "so100_leader": "so100_leader",
    "moss": "moss_follower",
    "koch": "koch_follower",
    "koch_leader": "koch_leader",
    "bi_so101": "bi_so101_follower",
    "bi_so101_leader": "bi_so101_leader",
    "viperx": "viperx",
    "widowx": "widowx",
    "aloha": "aloha",
    "aloha_leader": "aloha_leader",
    "lekiwi": "lekiwi",
    "lekiwi_leader": "so101_leader",  # LeKiwi's leader is an SO-101 leader arm (+ the keyboard for the base)
    "hope_jr_arm": "hope_jr_arm",
    "hope_jr_hand": "hope_jr_hand",
    "homunculus_glove": "homunculus_glove",  # a sensor stream, not servos (robokit.robots.virtual_glove)
}


def _check(table: dict[str, str], kind: str, type_name: str) -> None:
    if type_name not in table:
        close = difflib.get_close_matches(type_name, table, n=2)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown {kind} {type_name!r}; known: {', '.join(sorted(table))}.{hint}")


def _load(table: dict[str, str], kind: str, type_name: str):
    _check(table, kind, type_name)
    module, cls = table[type_name].split(":")
    return getattr(importlib.import_module(module), cls)


def robot_class(type_name: str):
    return _load(ROBOTS, "robot type", type_name)


def teleoperator_class(type_name: str):
    return _load(TELEOPERATORS, "teleoperator type", type_name)


def make_robot(type_name: str, **config_fields):
    cls = robot_class(type_name)
    return cls(cls.config_class(**config_fields))


def make_teleoperator(type_name: str, **config_fields):
    cls = teleoperator_class(type_name)
    return cls(cls.config_class(**config_fields))


def virtual_arm_class(name: str) -> type:
    """The robot / teleoperator class a virtual-arm name emulates (bimanual ones have `arm_class`)."""
    _check(VIRTUAL_ARMS, "virtual arm", name)
    type_name = VIRTUAL_ARMS[name]
    return robot_class(type_name) if type_name in ROBOTS else teleoperator_class(type_name)
