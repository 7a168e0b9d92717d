"""Keyboard and gamepad teleoperators (input libraries are imported only on connect()).

`KeyboardTeleop` turns held keys into base velocities (LeKiwi) or end-effector deltas:

    base:  w/s forward/back (x.vel), a/d left/right (y.vel), z/x turn left/right (theta.vel),
           r/f faster/slower
    ee:    arrows x/y, shift/ctrl z, o/c gripper open/close  -> delta_x, delta_y, delta_z, gripper

Keys come from pynput when a display is available; `press()` / `release()` feed them from any
other source (a test, a web page, a terminal reader).

`GamepadTeleop` gives the same two kinds of action from a gamepad (pygame's joystick module):

    base:  left stick x.vel / y.vel, right stick left/right theta.vel
    ee:    left stick x (up = forward) / y (left), right stick up/down z, RB open / LB close the gripper

In "ee" mode both emit `delta_x`, `delta_y`, `delta_z`, `gripper` in -1..1, which
`robokit.teleoperators.end_effector.EndEffectorTeleop` turns into an arm's joint targets.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

from robokit.teleoperators.teleoperator import Teleoperator, TeleoperatorConfig

logger = logging.getLogger(__name__)

BASE_SPEEDS = [(0.1, 30.0), (0.2, 60.0), (0.3, 90.0)]  # (m/s, deg/s) per speed level


@dataclass
class KeyboardTeleopConfig(TeleoperatorConfig):
    mode: str = "base"
    """"base": x.vel / y.vel / theta.vel; "ee": delta_x / delta_y / delta_z / gripper."""
    use_pynput: bool = True
    """Listen to the keyboard with pynput (needs a display); else keys come only through press()."""

    def __post_init__(self):
        _check_mode(type(self).__name__, self.mode)


BASE_KEYS = ("x.vel", "y.vel", "theta.vel")
EE_KEYS = ("delta_x", "delta_y", "delta_z", "gripper")


def _check_mode(owner: str, mode: str) -> None:
    if mode not in ("base", "ee"):
        raise ValueError(f"{owner}.mode={mode!r}, expected 'base' (base velocities) or 'ee' (end-effector deltas)")


class KeyboardTeleop(Teleoperator):
    name = "keyboard"
    config_class = KeyboardTeleopConfig

    def __init__(self, config: KeyboardTeleopConfig):
        super().__init__(config)
        self.config: KeyboardTeleopConfig = config
        self.pressed: set[str] = set()
        self.speed_level = 0
        self._lock = threading.Lock()
        self._listener = None
        self._connected = False

    @property
    def action_features(self) -> dict[str, Any]:
        return {k: float for k in (BASE_KEYS if self.config.mode == "base" else EE_KEYS)}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        if self.config.use_pynput and (os.environ.get("DISPLAY") or sys.platform in ("darwin", "win32")):
            try:
                from pynput import keyboard

                def name(key):
                    return getattr(key, "char", None) or str(key).removeprefix("Key.")

                self._listener = keyboard.Listener(
                    on_press=lambda k: self.press(name(k)), on_release=lambda k: self.release(name(k))
                )
                self._listener.start()
            except Exception as exc:
                logger.warning(
                    "keyboard teleop: pynput unavailable (%s), so no key is read (the commands stay at rest; "
                    "Python code can call press()/release())", exc
                )
        else:
            logger.info("keyboard teleop: no display (pynput reads keys through one), so no key is read and the "
                        "commands stay at rest; Python code can call press()/release()")
        self._connected = True

    def press(self, key: str) -> None:
        with self._lock:
            if key == "r":
                self.speed_level = min(self.speed_level + 1, len(BASE_SPEEDS) - 1)
            elif key == "f":
                self.speed_level = max(self.speed_level - 1, 0)
            self.pressed.add(key)

    def release(self, key: str) -> None:
        with self._lock:
            self.pressed.discard(key)

    def get_action(self) -> dict[str, float]:
        with self._lock:
            held = set(self.pressed)

        def axis(plus: str, minus: str) -> float:
            return float(plus in held) - float(minus in held)

        if self.config.mode == "base":
            lin, ang = BASE_SPEEDS[self.speed_level]
            return {
                "x.vel": lin * axis("w", "s"),
                "y.vel": lin * axis("a", "d"),
                "theta.vel": ang * axis("z", "x"),
            }
        return {
            "delta_x": axis("up", "down"),
            "delta_y": axis("left", "right"),
            "delta_z": axis("shift", "ctrl"),
            "gripper": axis("o", "c"),
        }

    def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._connected = False


def gamepad_to_base(
    axes: list[float], deadzone: float = 0.1, max_lin: float = 0.3, max_ang: float = 90.0
) -> dict[str, float]:
    """Left stick (axes 0, 1) drives x/y, right stick x (axis 3) turns; sticks report -1..1, y down positive."""

    def dz(v: float) -> float:
        return 0.0 if abs(v) < deadzone else v

    return {
        "x.vel": -dz(axes[1]) * max_lin,
        "y.vel": -dz(axes[0]) * max_lin,
        "theta.vel": -dz(axes[3]) * max_ang,
    }


def gamepad_to_ee(axes: list[float], buttons: list[bool], deadzone: float = 0.1) -> dict[str, float]:
    """End-effector deltas in -1..1: left stick (axes 0, 1) x/y, right stick y (axis 4) z; RB (5) open, LB (4) close.

    Sticks report -1..1 with y down positive; pushing a stick up moves forward (+x) or up (+z),
    pushing it left moves to the left (+y), like the keyboard's arrows.
    """

    def dz(v: float) -> float:
        return 0.0 if abs(v) < deadzone else float(v)

    return {
        "delta_x": -dz(axes[1]),
        "delta_y": -dz(axes[0]),
        "delta_z": -dz(axes[4]),
        "gripper": float(bool(buttons[5])) - float(bool(buttons[4])),
    }


@dataclass
class GamepadTeleopConfig(TeleoperatorConfig):
    joystick_index: int = 0
    """Which joystick pygame opens."""
    deadzone: float = 0.1
    """Stick values below this are treated as zero."""
    mode: str = "base"
    """"base": x.vel / y.vel / theta.vel; "ee": delta_x / delta_y / delta_z / gripper (for an arm)."""

    def __post_init__(self):
        _check_mode(type(self).__name__, self.mode)


class GamepadTeleop(Teleoperator):
    """Base velocities or end-effector deltas from a gamepad (pygame's joystick module, imported on connect)."""

    name = "gamepad"
    config_class = GamepadTeleopConfig

    def __init__(self, config: GamepadTeleopConfig):
        super().__init__(config)
        self.config: GamepadTeleopConfig = config
        self._joystick = None

    @property
    def action_features(self) -> dict[str, Any]:
        return {k: float for k in (BASE_KEYS if self.config.mode == "base" else EE_KEYS)}

    @property
    def is_connected(self) -> bool:
        return self._joystick is not None

    def connect(self, calibrate: bool = True) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no window needed
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no "Hello from the pygame community" banner
        import pygame

        pygame.display.init()  # the event queue (dummy driver); pygame.init() would also open audio
        pygame.joystick.init()
        if pygame.joystick.get_count() <= self.config.joystick_index:
            raise ConnectionError(
                f"gamepad {self.config.joystick_index}: pygame sees {pygame.joystick.get_count()} joystick(s); "
                "plug a gamepad in, or use --teleop.type keyboard"
            )
        self._joystick = pygame.joystick.Joystick(self.config.joystick_index)
        self._joystick.init()

    def get_action(self) -> dict[str, float]:
        import pygame

        pygame.event.pump()
        pad = self._joystick
        n_axes, n_buttons = pad.get_numaxes(), pad.get_numbuttons()
        axes = [pad.get_axis(i) if i < n_axes else 0.0 for i in range(max(5, n_axes))]
        if self.config.mode == "base":
            return gamepad_to_base(axes, self.config.deadzone)
        buttons = [bool(pad.get_button(i)) if i < n_buttons else False for i in range(max(6, n_buttons))]
        return gamepad_to_ee(axes, buttons, self.config.deadzone)

    def disconnect(self) -> None:
        self._joystick = None
