"""Hardware commands: virtual-arm, find-port, find-cameras, calibrate, setup-motors, teleoperate, record, replay.

Try them without hardware:

    robokit virtual-arm so101 so101_leader --id my_arm --animate     # prints two /dev/pts/N paths
    robokit teleoperate --robot.port /dev/pts/5 --robot.id my_arm --teleop.port /dev/pts/6 --teleop.id my_arm
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from robokit.cli import parse
from robokit.errors import UsageError
from robokit.robots.registry import ROBOTS, TELEOPERATORS, VIRTUAL_ARMS

logger = logging.getLogger(__name__)


# -- device arguments shared by the commands ---------------------------------------------------------
@dataclass
class RobotArgs:
    # the lists of types come from the registries, so a new robot shows up in --help by itself
    type: Annotated[str, tyro.conf.arg(help=f"Robot type: {', '.join(ROBOTS)}.")] = "so101_follower"
    port: str = ""
    """Servo bus port (`robokit find-port`; `robokit virtual-arm` prints one)."""
    id: str = "default"
    """This robot's name: selects its calibration file."""
    calibration_dir: str | None = None
    """Calibration folder (default ~/.cache/robokit/calibration)."""
    cameras: str = ""
    """Cameras as NAME=TYPE[:SOURCE][:WxH][@FPS], comma-separated, e.g. 'front=opencv:0:640x480@30,top=synthetic'."""
    max_relative_target: float | None = None
    """Largest step per command and joint (normalized units); None: no clamp."""
    use_degrees: bool = False
    """Joints in degrees instead of -100..100."""
    left_port: str = ""
    """Bimanual robots: port of the left arm."""
    right_port: str = ""
    """Bimanual robots: port of the right arm."""
    remote_ip: str = "127.0.0.1"
    """lekiwi_client: address of the robot running `robokit lekiwi-host`."""
    port_commands: int = 5555
    """lekiwi_client: the host's command port (--port-commands of `robokit lekiwi-host`)."""
    port_observations: int = 5556
    """lekiwi_client: the host's observation port (--port-observations of `robokit lekiwi-host`)."""
    env: str = "aloha_transfer_cube"
    """sim: the simulated env behind the robot (see robokit.envs)."""
    side: str = "right"
    """hope_jr_hand: which hand, right or left."""

    def build(self):
        from robokit.cameras import parse_camera_specs
        from robokit.robots.registry import robot_class

        cls = robot_class(self.type)
        values = {**dataclasses.asdict(self), "cameras": parse_camera_specs(self.cameras)}
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        return cls(cls.config_class(**{k: v for k, v in values.items() if k in names}))


@dataclass
class TeleopArgs:
    type: Annotated[
        str,
        tyro.conf.arg(
            help=f"Teleoperator type: {', '.join(TELEOPERATORS)}. keyboard and gamepad drive an arm robot "
            "in end-effector space (inverse kinematics), a robot with a base in base velocities."
        ),
    ] = "so101_leader"
    port: str = ""
    """Servo bus port of the leader arm."""
    id: str = "default"
    """This leader's name: selects its calibration file."""
    calibration_dir: str | None = None
    """Calibration folder (default ~/.cache/robokit/calibration)."""
    use_degrees: bool = False
    """Joints in degrees instead of -100..100 (match the robot)."""
    left_port: str = ""
    """Bimanual leaders: port of the left arm."""
    right_port: str = ""
    """Bimanual leaders: port of the right arm."""
    side: str = "right"
    """homunculus_glove: the hand wearing it, right or left."""
    smoothing: float = 0.2
    """homunculus_glove: exponential smoothing of the readings, the weight of the newest (1.0: none)."""
    mode: str | None = None
    """keyboard, gamepad: 'ee' (end-effector deltas -> joint targets by inverse kinematics, SO-100/101) or 'base' (LeKiwi); default: 'base' for a robot with a base, else 'ee'."""
    ee_speed: float = 0.05
    """keyboard / gamepad 'ee' mode: end-effector speed in m/s with a key held (a stick pushed fully)."""

    def build(self):
        from robokit.robots.registry import teleoperator_class

        cls = teleoperator_class(self.type)
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k in names}
        if values.get("mode", "") is None:  # the device's default
            del values["mode"]
        return cls(cls.config_class(**values))

    def build_for(self, robot, fps: float):
        """The teleoperator for `robot`: a keyboard drives an arm in end-effector space (inverse kinematics)."""
        args = self
        if self.type in ("keyboard", "gamepad") and self.mode is None:
            has_base = any(k.endswith(".vel") for k in robot.action_features)
            args = dataclasses.replace(self, mode="base" if has_base else "ee")
        from robokit.teleoperators.end_effector import for_robot

        return for_robot(args.build(), robot, step_m=args.ee_speed / fps)


def _terminate_as_interrupt() -> None:
    """SIGTERM (e.g. from a process manager) unwinds like Ctrl-C, so torque is released."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# -- virtual-arm -----------------------------------------------------------------------------------------
@dataclass
class VirtualArmConfig:
    arms: Annotated[tuple[str, ...], tyro.conf.arg(help=f"Arms to emulate: {', '.join(VIRTUAL_ARMS)}.")] = (
        "so101",
    )
    id: str | None = None
    """Also write a matching calibration file for this robot id, so the arms need no calibration."""
    calibration_dir: str | None = None
    """Calibration folder (default ~/.cache/robokit/calibration)."""
    animate: bool = False
    """Leaders move by themselves (slow sine sweeps), as if a person held them."""
    baudrate: int = 1_000_000
    """Baud rate the virtual motors answer at."""
    duration_s: float | None = None
    """Stop after this many seconds (default: serve until Ctrl-C)."""
    latency_ms: float = 0.0
    """Fault injection: delay every reply by this much."""
    silent_ids: tuple[int, ...] = ()
    """Fault injection: motor ids that never answer."""
    corrupt_probability: float = 0.0
    """Fault injection: chance that a reply has a wrong checksum / CRC."""


def virtual_arm(argv: list[str]) -> int:
    from robokit.motors.emulator import FaultConfig
    from robokit.robots.virtual import virtual_device

    # `robokit virtual-arm so101 koch` reads better than `--arms so101 koch`
    positional = []
    while argv and not argv[0].startswith("-"):
        positional.append(argv.pop(0))
    if positional:
        argv = ["--arms", *positional, *argv]
    cfg = parse(
        VirtualArmConfig,
        argv,
        prog="robokit virtual-arm",
        description="Serve emulated servo arms on pseudo-terminals.",
    )
    _terminate_as_interrupt()
    arms = []
    try:
        for name in cfg.arms:
            arm = virtual_device(
                name,
                calibration_id=cfg.id,
                calibration_dir=cfg.calibration_dir,
                animate=cfg.animate and ("leader" in name or name == "homunculus_glove"),
                baudrate=cfg.baudrate,
                faults=FaultConfig(
                    silent_ids=set(cfg.silent_ids),
                    latency_s=cfg.latency_ms / 1000,
                    corrupt_probability=cfg.corrupt_probability,
                ),
            )
            arms.append(arm)
            for side, port in arm.ports.items():
                label = f"{name}.{side}" if side else name
                path = arm.sides[side].calibration_path if side else arm.calibration_path
                print(f"{label}: {port}" + (f"  (calibration {path})" if path else ""), flush=True)
        print("serving; Ctrl-C to stop", flush=True)
        deadline = None if cfg.duration_s is None else time.monotonic() + cfg.duration_s
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        for arm in arms:
            arm.close()
    return 0


# -- find-port / find-cameras ----------------------------------------------------------------------------
@dataclass
class FindPortConfig:
    interactive: bool = True
    """Ask to unplug the adapter and report which port disappeared (only on an interactive terminal)."""


def _serial_ports() -> list[str]:
    from serial.tools import list_ports

    ports = {p.device for p in list_ports.comports()}
    ports |= {
        str(p) for pattern in ("ttyACM*", "ttyUSB*", "tty.usbmodem*") for p in Path("/dev").glob(pattern)
    }
    return sorted(ports)


def find_port(argv: list[str]) -> int:
    cfg = parse(
        FindPortConfig,
        argv,
        prog="robokit find-port",
        description="Find the serial port of a servo bus adapter.",
    )
    before = _serial_ports()
    print("Serial ports:", ", ".join(before) if before else "none")
    if not (cfg.interactive and sys.stdin.isatty()):
        return 0
    input("Unplug the USB cable of the adapter you are looking for, then press ENTER...")
    time.sleep(0.5)
    gone = sorted(set(before) - set(_serial_ports()))
    if len(gone) == 1:
        print(f"The port of this adapter is {gone[0]}. Plug it back in.")
        return 0
    print(f"Could not tell the port: {'none' if not gone else gone} disappeared.")
    return 1


@dataclass
class FindCamerasConfig:
    save_dir: Path | None = None
    """Save one frame per camera found into this folder (to see which is which)."""
    max_index: int = 10
    """Indices to probe where /dev/video* does not exist."""


def find_cameras(argv: list[str]) -> int:
    cfg = parse(
        FindCamerasConfig, argv, prog="robokit find-cameras", description="List the cameras robokit can open."
    )
    from robokit.cameras.opencv import find_opencv_cameras

    found = find_opencv_cameras(cfg.max_index)
    try:
        import pyrealsense2 as rs

        for dev in rs.context().query_devices():
            found.append({"type": "realsense", "index_or_path": dev.get_info(rs.camera_info.serial_number)})
    except ImportError:
        pass
    if not found:
        print(
            "No cameras found. (Tests and virtual robots can use the synthetic camera: --robot.cameras front=synthetic)"
        )
        return 0
    for cam in found:
        print("  ".join(f"{k}={v}" for k, v in cam.items()))
    if cfg.save_dir is not None and found:
        import cv2

        from robokit.cameras import CameraConfig, make_camera

        cfg.save_dir.mkdir(parents=True, exist_ok=True)
        for cam in found:
            if cam["type"] != "opencv":
                continue
            camera = make_camera(
                CameraConfig("opencv", cam["index_or_path"], int(cam["width"]), int(cam["height"]))
            )
            with camera:
                path = cfg.save_dir / f"camera_{Path(cam['index_or_path']).name}.png"
                cv2.imwrite(str(path), cv2.cvtColor(camera.read(), cv2.COLOR_RGB2BGR))
                print(f"saved {path}")
    return 0


# -- calibrate / setup-motors ----------------------------------------------------------------------------
@dataclass
class DeviceConfig:
    type: Annotated[
        str, tyro.conf.arg(help=f"A robot or teleoperator type: {', '.join([*ROBOTS, *TELEOPERATORS])}.")
    ] = "so101_follower"
    port: str = ""
    """Servo bus port."""
    id: str = "default"
    """The device's name: selects its calibration file."""
    calibration_dir: str | None = None
    """Calibration folder (default ~/.cache/robokit/calibration)."""
    side: str = "right"
    """hope_jr_hand / homunculus_glove: which hand, right or left (sets reversed servos / sensors)."""


def _build_device(cfg: DeviceConfig):
    if cfg.type in TELEOPERATORS:
        return TeleopArgs(cfg.type, cfg.port, cfg.id, cfg.calibration_dir, side=cfg.side).build()
    if cfg.type not in ROBOTS:
        from robokit.cli import suggest

        raise UsageError(
            f"unknown device type {cfg.type!r}; known: {', '.join(sorted({**ROBOTS, **TELEOPERATORS}))}."
            f"{suggest(cfg.type, [*ROBOTS, *TELEOPERATORS])}"
        )
    return dataclasses.replace(
        RobotArgs(cfg.type, cfg.port, cfg.id, cfg.calibration_dir), side=cfg.side
    ).build()


def calibrate(argv: list[str]) -> int:
    cfg = parse(
        DeviceConfig,
        argv,
        prog="robokit calibrate",
        description="Calibrate a robot or leader arm interactively.",
    )
    _terminate_as_interrupt()
    device = _build_device(cfg)
    try:
        device.connect(calibrate=False)
        device.calibrate()
    except KeyboardInterrupt:
        print("interrupted; calibration not saved")
        return 130
    finally:
        if device.is_connected:
            device.disconnect()
    return 0


def setup_motors(argv: list[str]) -> int:
    cfg = parse(
        DeviceConfig,
        argv,
        prog="robokit setup-motors",
        description="Give each motor of a new arm its id and baud rate, one motor at a time.",
    )
    device = _build_device(cfg)
    bus = device.bus
    bus.connect(handshake=False)
    try:
        for name in reversed(list(bus.motors)):
            input(f"Connect the controller board to the '{name}' motor only and press ENTER...")
            bus.setup_motor(name)
            print(f"'{name}' motor id set to {bus.motors[name].id}")
    except KeyboardInterrupt:
        return 130
    finally:
        bus.disconnect(disable_torque=False)
    return 0


# -- teleoperate / record / replay -----------------------------------------------------------------------
@dataclass
class TeleoperateConfig:
    robot: RobotArgs = field(default_factory=RobotArgs)
    teleop: TeleopArgs = field(default_factory=TeleopArgs)
    fps: int = 60
    """Loop rate (ticks per second)."""
    duration_s: float | None = None
    """Stop after this many seconds (default: until Ctrl-C)."""


def teleoperate(argv: list[str]) -> int:
    from robokit.control.teleoperate import teleoperate_loop
    from robokit.control.timing import LoopTimer

    cfg = parse(
        TeleoperateConfig,
        argv,
        prog="robokit teleoperate",
        description="Drive a robot from a leader arm, a glove, a gamepad or the keyboard "
        "(keyboard + arm: arrows move the gripper in x/y, shift/ctrl in z, o/c open/close it).",
    )
    _terminate_as_interrupt()
    robot = cfg.robot.build()
    teleop = cfg.teleop.build_for(robot, cfg.fps)
    timer = LoopTimer(cfg.fps)
    try:
        with robot, teleop:
            teleoperate_loop(robot, teleop, cfg.fps, cfg.duration_s, timer=timer)
    except KeyboardInterrupt:
        pass
    print(timer.report())
    return 0


@dataclass
class RecordConfig:
    root: Path
    """Dataset folder to create (or to extend with --resume)."""
    task: str
    """What the demonstrations do, in words (stored with every frame)."""
    robot: RobotArgs = field(default_factory=RobotArgs)
    teleop: TeleopArgs = field(default_factory=TeleopArgs)
    no_teleop: bool = False
    """Record without a teleoperator (the robot holds its pose)."""
    fps: int = 30
    """Recording rate (frames per second)."""
    num_episodes: int = 1
    """Episodes to record."""
    episode_time_s: float = 60
    """Length of each episode in seconds."""
    reset_time_s: float = 10
    """Time between episodes to reset the scene (teleoperation continues, nothing is recorded)."""
    use_videos: bool = True
    """Store cameras as mp4 video (else PNG images in parquet)."""
    video_codec: str = "av1"
    """Video codec: av1, h264 or hevc."""
    resume: bool = False
    """Append episodes to an existing dataset."""
    push_to_hub: str | None = None
    """Upload the dataset to this hub repo id when done."""
    keyboard: bool = True
    """Listen for next / re-record / stop keys."""
    policy_path: str | None = None
    """Drive the robot with this trained policy instead of the teleoperator: a training output folder
    (its last checkpoint), a checkpoint or save_pretrained folder, or a hub repo id."""
    policy_device: str = "cpu"
    """Device the policy runs on (cpu, cuda, mps)."""


def record(argv: list[str]) -> int:
    from robokit.control import record as rec

    cfg = parse(
        RecordConfig, argv, prog="robokit record", description="Record teleoperated episodes into a dataset."
    )
    _terminate_as_interrupt()
    if cfg.policy_path:  # a wrong path or an offline hub id fails here, before any hardware is touched
        from robokit.policies.policy import resolve_pretrained_dir

        cfg.policy_path = str(resolve_pretrained_dir(cfg.policy_path))
    robot = cfg.robot.build()
    teleop = None if (cfg.no_teleop or cfg.policy_path) else cfg.teleop.build_for(robot, cfg.fps)
    events = rec.RecordEvents()
    policy = None
    dataset = None
    try:
        robot.connect()
        if teleop is not None:
            teleop.connect()
        if cfg.policy_path:
            from robokit.control.policy_actor import PolicyActor

            policy = PolicyActor.from_pretrained(cfg.policy_path, robot, cfg.task, cfg.policy_device)
        dataset, timer = rec.record(
            robot,
            teleop,
            cfg.root,
            cfg.task,
            fps=cfg.fps,
            num_episodes=cfg.num_episodes,
            episode_time_s=cfg.episode_time_s,
            reset_time_s=cfg.reset_time_s,
            use_videos=cfg.use_videos,
            resume=cfg.resume,
            events=events,
            keyboard=cfg.keyboard,
            video_codec=cfg.video_codec,
            policy=policy,
        )
        print(
            f"recorded to {cfg.root}: {dataset.meta.total_episodes} episode(s), {dataset.meta.total_frames} frames; {timer.report()}"
        )
    except KeyboardInterrupt:
        print(f"interrupted; the episodes saved so far are in {cfg.root}")
        return 130
    finally:
        for device in (teleop, robot):
            if device is not None and device.is_connected:
                device.disconnect()
    if cfg.push_to_hub and dataset is not None:
        from robokit.data import RobotDataset

        url = RobotDataset(cfg.root).push_to_hub(cfg.push_to_hub)
        print(f"pushed to {url}")
    return 0


@dataclass
class ReplayConfig:
    root: Path
    """Dataset folder."""
    robot: RobotArgs = field(default_factory=RobotArgs)
    episode: int = 0
    """Episode to replay."""
    fps: int | None = None
    """Replay rate (default: the dataset's)."""


def replay(argv: list[str]) -> int:
    from robokit.control.record import replay as run_replay

    cfg = parse(
        ReplayConfig, argv, prog="robokit replay", description="Play a recorded episode's actions on a robot."
    )
    _terminate_as_interrupt()
    robot = cfg.robot.build()
    try:
        with robot:
            sent, timer = run_replay(robot, cfg.root, cfg.episode, cfg.fps)
        print(f"replayed {len(sent)} actions; {timer.report()}")
    except KeyboardInterrupt:
        return 130
    return 0


# -- lekiwi-host -------------------------------------------------------------------------------------------
@dataclass
class LeKiwiHostConfig:
    robot: RobotArgs = field(default_factory=lambda: RobotArgs(type="lekiwi"))
    port_commands: int = 5555
    """TCP port receiving commands."""
    port_observations: int = 5556
    """TCP port publishing observations."""
    fps: int = 30
    """Observation rate."""
    watchdog_s: float = 0.5
    """Stop the base when no command arrived for this long."""
    duration_s: float | None = None
    """Stop after this many seconds (default: until Ctrl-C)."""


def lekiwi_host(argv: list[str]) -> int:
    from robokit.robots.lekiwi_remote import LeKiwiHost

    cfg = parse(
        LeKiwiHostConfig,
        argv,
        prog="robokit lekiwi-host",
        description="Serve a LeKiwi robot to a LeKiwiClient over ZeroMQ.",
    )
    _terminate_as_interrupt()
    robot = cfg.robot.build()
    try:
        with robot:
            host = LeKiwiHost(robot, cfg.port_commands, cfg.port_observations, cfg.fps, cfg.watchdog_s)
            print(
                f"LeKiwi host: commands on :{cfg.port_commands}, observations on :{cfg.port_observations}",
                flush=True,
            )
            try:
                host.serve(cfg.duration_s)
            finally:
                host.close()
    except KeyboardInterrupt:
        pass
    return 0
