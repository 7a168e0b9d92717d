"""Robots and teleoperators by type name, and the servo layouts `robokit virtual-arm` emulates."""

from __future__ import annotations

import difflib
import importlib

ROBOTS: dict[str, str] = {
    "so101_follower": "robokit.robots.so101:SO101Follower",
    "so100_follower": "robokit.robots.so101:SO100Follower",
    "moss_follower": "robokit.robots.so101:MossFollower",
    "koch_follower": "robokit.robots.koch:KochFollower",
}
TELEOPERATORS: dict[str, str] = {
    "so101_leader": "robokit.robots.so101:SO101Leader",
    "so100_leader": "robokit.robots.so101:SO100Leader",
    "moss_leader": "robokit.robots.so101:MossLeader",
    "koch_leader": "robokit.robots.koch:KochLeader",
}
# virtual-arm name -> the device type whose servo layout is emulated
VIRTUAL_ARMS: dict[str, str] = {
    "so101": "so101_follower", "so101_leader": "so101_leader", "so100": "so100_follower",
    "so100_leader": "so100_leader", "moss": "moss_follower", "koch": "koch_follower", "koch_leader": "koch_leader",
}


def _check(table: dict[str, str], kind: str, type_name: str) -> None:
    if type_name not in table:
        close = difflib.get_close_matches(type_name, table, n=2)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {kind} {type_name!r}; known: {sorted(table)}.{hint}")


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


def virtual_arm_layout(name: str) -> tuple[str, dict[int, str], type]:
    """(protocol, {id: model}, device class) of a virtual-arm name."""
    _check(VIRTUAL_ARMS, "virtual arm", name)
    type_name = VIRTUAL_ARMS[name]
    cls = robot_class(type_name) if type_name in ROBOTS else teleoperator_class(type_name)
    return cls.bus_class.protocol, {motor_id: model for motor_id, model in cls.layout.values()}, cls
