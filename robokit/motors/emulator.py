"""A chain of virtual servos behind a pseudo-terminal, speaking the real wire protocols.

    chain = ServoChainEmulator("feetech", {1: "sts3215", 2: "sts3215"})
    chain.start()
    bus = FeetechMotorsBus(chain.port, motors)   # the SDK opens /dev/pts/N like a USB adapter
    ...
    chain.close()                                # "unplugs" the adapter: the bus sees its port die

Each virtual servo holds its model's register table, answers ping / read / write / sync read /
sync write / broadcast ping, and moves its shaft toward the goal at a fixed speed while torque is
on (with torque off, a test can move it "by hand" with `set_position`). A motor only answers when
the line's baud rate (the termios speed the client set on the pty) matches its `Baud_Rate`
register, as on a real bus. Faults are injected through `chain.faults`.
"""

from __future__ import annotations

import logging
import os
import random
import select
import termios
import threading
import time
import tty
from dataclasses import dataclass, field

from robokit.motors import protocol as P
from robokit.motors.tables import ModelSpec, baudrate_table, model_spec

logger = logging.getLogger(__name__)

# termios speed constant -> baud rate, to read what the client set on its end of the pty
_TERMIOS_BAUDS = {
    getattr(termios, f"B{b}"): b
    for b in (
        9600,
        19200,
        38400,
        57600,
        115200,
        230400,
        460800,
        500000,
        576000,
        921600,
        1000000,
        1152000,
        1500000,
        2000000,
        2500000,
        3000000,
        3500000,
        4000000,
    )
    if hasattr(termios, f"B{b}")
}

_TCGETS2 = 0x802C542A  # Linux: read struct termios2 (44 bytes; c_ospeed at offset 40)

# Dynamixel 2.0 status error numbers
DXL_ERR_INSTRUCTION = 2
DXL_ERR_CRC = 3
DXL_ERR_ACCESS = 7
DXL_EEPROM_END = 64


@dataclass
class FaultConfig:
    """Faults the emulator injects; change the fields at any time (they are read per packet)."""

    corrupt_replies: int = 0
    """The next N status packets go out with a wrong checksum / CRC (counts down)."""
    silent_ids: set[int] = field(default_factory=set)
    """Motors that never answer (as if unplugged from the chain)."""
    latency_s: float = 0.0
    """Delay before every reply."""
    corrupt_probability: float = 0.0
    """Chance that any status packet goes out with a wrong checksum / CRC (seeded by `seed`)."""
    seed: int = 0
    """Seed of the random corruption."""


class VirtualServo:
    """One servo: a register table plus a shaft that moves toward its goal."""

    def __init__(
        self,
        motor_id: int,
        model: str,
        baudrate: int = 1_000_000,
        position: float | None = None,
        speed: float = 4000.0,
    ):
        self.spec: ModelSpec = model_spec(model)
        self.protocol = self.spec.protocol
        self.regs = bytearray(256)
        if position is None:  # the middle of the encoder range
            position = self.spec.resolution // 2
        self.position = float(position)
        """Shaft angle in encoder steps (0..resolution-1), before any homing offset."""
        self.speed = speed
        """Steps per second while moving toward the goal with torque on."""
        bauds = baudrate_table(self.protocol)
        if baudrate not in bauds:
            raise ValueError(
                f"virtual servo {motor_id}: baudrate={baudrate}, {model} supports {sorted(bauds)}"
            )
        self._set("Model_Number", self.spec.model_number)
        self._set("ID", motor_id)
        self._set("Baud_Rate", bauds[baudrate])
        self._set("Max_Position_Limit", self.spec.resolution - 1)
        if self.protocol == "feetech":
            self._set("Firmware_Major_Version", self.spec.firmware[0])
            self._set("Firmware_Minor_Version", self.spec.firmware[1])
            self._set("Max_Torque_Limit", 1000)
            if "Torque_Limit" in self.spec.table:  # STS only
                self._set("Torque_Limit", 1000)
            self._set("P_Coefficient", 32)
            self._set("Present_Voltage", 120)
        else:
            self._set("Firmware_Version", self.spec.firmware[0])
            self._set("Operating_Mode", 3)
            self._set("Status_Return_Level", 2)
            self._set("Position_P_Gain", 800)
            self._set("Present_Input_Voltage", 120)
        self._set("Present_Temperature", 30)
        self._set("Goal_Position", int(position))
        self._refresh()

    # -- registers -------------------------------------------------------------------------------
    def _addr(self, name: str) -> tuple[int, int]:
        return self.spec.table[name]

    def _set(self, name: str, value: int) -> None:
        addr, size = self._addr(name)
        # registers hold their wire bytes (big-endian words on Feetech's SCS series)
        self.regs[addr : addr + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, self.spec.byte_order)

    def get(self, name: str, signed: bool = False) -> int:
        addr, size = self._addr(name)
        raw = int.from_bytes(self.regs[addr : addr + size], self.spec.byte_order)
        if not signed:
            return raw
        if self.protocol == "feetech":
            bit = {"Homing_Offset": 11}.get(name, 8 * size - 1)
            return -(raw & ((1 << bit) - 1)) if raw & (1 << bit) else raw
        return raw - (1 << (8 * size)) if raw & (1 << (8 * size - 1)) else raw

    @property
    def motor_id(self) -> int:
        return self.get("ID")

    @property
    def baudrate(self) -> int:
        code = self.get("Baud_Rate")
        return {v: k for k, v in baudrate_table(self.protocol).items()}.get(code, -1)

    def _homing_offset(self) -> int:
        # SCS-series servos have no homing register: their positions are the shaft's
        return self.get("Homing_Offset", signed=True) if "Homing_Offset" in self.spec.table else 0

    def _present_from_shaft(self, shaft: float) -> int:
        offset = self._homing_offset()
        res = self.spec.resolution
        if self.protocol == "feetech":  # Present = Actual - Offset, wrapped to one turn
            return int(round(shaft - offset)) % res
        return int(round(shaft)) + offset  # Dynamixel: Present = Actual + Offset

    def _shaft_from_present(self, present: int) -> float:
        offset = self._homing_offset()
        if self.protocol == "feetech":
            return float((present + offset) % self.spec.resolution)
        return float(present - offset)

    def _refresh(self) -> None:
        self._set("Present_Position", self._present_from_shaft(self.position))
        moving = int(self.get("Torque_Enable") == 1 and abs(self._goal_shaft() - self.position) > 0.5)
        self._set("Moving", moving)

    def _goal_shaft(self) -> float:
        goal = self.get("Goal_Position", signed=self.protocol == "dynamixel")
        lo, hi = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
        if self.protocol == "dynamixel":
            lo, hi = self.get("Min_Position_Limit", signed=True), self.get("Max_Position_Limit", signed=True)
        if lo < hi:  # both vendors clamp the goal to the position limits in position mode
            goal = min(max(goal, lo), hi)
        return self._shaft_from_present(goal)

    def read(self, addr: int, length: int) -> bytes:
        self._refresh()
        return bytes(self.regs[addr : addr + length])

    def write(self, addr: int, data: bytes) -> int:
        """Write registers; returns an error number (0: ok)."""
        if self.protocol == "dynamixel" and addr < DXL_EEPROM_END and self.get("Torque_Enable"):
            return DXL_ERR_ACCESS  # EEPROM is locked while torque is on
        if addr + len(data) > len(self.regs):
            return DXL_ERR_ACCESS
        self.regs[addr : addr + len(data)] = data
        torque_addr = self._addr("Torque_Enable")[0]
        if addr <= torque_addr < addr + len(data) and data[torque_addr - addr] == 1:
            # switching torque on holds the current position unless a goal comes in the same write
            goal_addr = self._addr("Goal_Position")[0]
            if not addr <= goal_addr < addr + len(data):
                self._set("Goal_Position", self._present_from_shaft(self.position))
        return 0

    def step(self, dt: float) -> None:
        """Advance the shaft toward the goal for `dt` seconds (only with torque on)."""
        wheel_mode = "Operating_Mode" in self.spec.table and self.get("Operating_Mode") == 1
        if self.protocol == "feetech" and wheel_mode:  # wheel (velocity) mode
            velocity = self.get("Goal_Velocity", signed=True) if self.get("Torque_Enable") == 1 else 0
            self.position = (self.position + velocity * dt) % self.spec.resolution
            self._set("Present_Velocity", (-velocity | 1 << 15) if velocity < 0 else velocity)
            return
        if self.get("Torque_Enable") == 1:
            target = self._goal_shaft()
            delta = target - self.position
            max_step = self.speed * dt
            self.position = (
                target if abs(delta) <= max_step else self.position + max_step * (1 if delta > 0 else -1)
            )

    def set_position(self, shaft: float) -> None:
        """Move the shaft by hand (a human moving a leader arm)."""
        self.position = float(shaft)
        self._refresh()


class ServoChainEmulator:
    """Virtual servos on one bus behind a pty; `port` is the path a bus opens."""

    def __init__(
        self, protocol: str, motors: dict[int, str], baudrate: int = 1_000_000, speed: float = 4000.0
    ):
        if protocol not in ("feetech", "dynamixel"):
            raise ValueError(f"ServoChainEmulator: protocol={protocol!r}, expected 'feetech' or 'dynamixel'")
        self.protocol = protocol
        self.servos: list[VirtualServo] = []
        for motor_id, model in motors.items():
            servo = VirtualServo(motor_id, model, baudrate=baudrate, speed=speed)
            if servo.protocol != protocol:
                raise ValueError(
                    f"ServoChainEmulator: motor {motor_id} model {model!r} speaks {servo.protocol}, the chain is {protocol}"
                )
            self.servos.append(servo)
        self.faults = FaultConfig()
        self.packets_received = 0
        self.bad_packets = 0
        self.replies_corrupted = 0
        self._rng: random.Random | None = None
        self.last_instructions: list[P.Packet] = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._buf = bytearray()
        self._last_step = time.monotonic()

    # -- public helpers --------------------------------------------------------------------------
    def servo(self, motor_id: int) -> VirtualServo:
        for servo in self.servos:
            if servo.motor_id == motor_id:
                return servo
        raise KeyError(
            f"emulator on {self.port}: no motor with id {motor_id}; ids: {[s.motor_id for s in self.servos]}"
        )

    def start(self) -> "ServoChainEmulator":
        self._thread = threading.Thread(target=self._serve, name=f"servo-emulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the pty (the client's port then fails, like an unplugged adapter)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "ServoChainEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def serve_forever(self) -> None:
        self._serve()

    # -- serving ---------------------------------------------------------------------------------
    def _line_baudrate(self) -> int | None:
        """The baud rate the client set on the pty (None when unknown: then every motor answers)."""
        try:  # Linux termios2 holds the speed as a number, also for non-standard rates (250000)
            import fcntl

            raw = fcntl.ioctl(self._master, _TCGETS2, bytes(44))
            speed = int.from_bytes(raw[40:44], "little")
            if speed:
                return speed
        except (OSError, ImportError):
            pass
        try:
            return _TERMIOS_BAUDS.get(termios.tcgetattr(self._master)[5])
        except termios.error:
            return None

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.02)
            except (OSError, ValueError):
                return
            with self._lock:
                now = time.monotonic()
                for servo in self.servos:
                    servo.step(now - self._last_step)
                self._last_step = now
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            self._buf += data
            self._handle_buffer()

    def _handle_buffer(self) -> None:
        while self._buf:
            try:
                if self.protocol == "feetech":
                    packet, used = P.feetech_decode(self._buf)
                else:
                    packet, used = P.dynamixel_decode(self._buf, status=False)
            except P.PacketError as exc:
                self.bad_packets += 1
                logger.debug("emulator %s: dropped a bad packet (%s)", self.port, exc)
                start = self._buf.find(b"\xff\xff")
                del self._buf[: start + 2]
                continue
            if packet is None:
                del self._buf[:used]
                return
            del self._buf[:used]
            self.packets_received += 1
            self.last_instructions = (self.last_instructions + [packet])[-32:]
            with self._lock:
                replies = self._execute(packet)
            if replies:
                if self.faults.latency_s:
                    time.sleep(self.faults.latency_s)
                try:
                    os.write(self._master, b"".join(replies))
                except OSError:
                    return

    def _answering(self, line_baud: int | None) -> list[VirtualServo]:
        return [
            s
            for s in self.servos
            if s.motor_id not in self.faults.silent_ids and (line_baud is None or s.baudrate == line_baud)
        ]

    def _status(self, servo: VirtualServo, error: int, params: bytes = b"") -> bytes:
        if self.protocol == "feetech":
            raw = P.feetech_encode(servo.motor_id, error, params)
        else:
            raw = P.dynamixel_encode(servo.motor_id, P.INST_STATUS, params, error=error)
        corrupt = self.faults.corrupt_replies > 0
        if corrupt:
            self.faults.corrupt_replies -= 1
        elif self.faults.corrupt_probability > 0:
            if self._rng is None:
                self._rng = random.Random(self.faults.seed)
            corrupt = self._rng.random() < self.faults.corrupt_probability
        if corrupt:
            self.replies_corrupted += 1
            raw = raw[:-1] + bytes([raw[-1] ^ 0x5A])
        return raw

    def _execute(self, pkt: P.Packet) -> list[bytes]:
        servos = self._answering(self._line_baudrate())
        by_id = {s.motor_id: s for s in servos}
        inst, prm = pkt.code, pkt.params
        dxl = self.protocol == "dynamixel"
        broadcast = pkt.motor_id == P.BROADCAST_ID
        targets = servos if broadcast else [by_id[pkt.motor_id]] if pkt.motor_id in by_id else []

        if inst == P.INST_PING:
            out = []
            for servo in sorted(targets, key=lambda s: s.motor_id):
                params = b""
                if dxl:
                    params = servo.spec.model_number.to_bytes(2, "little") + bytes(
                        [servo.get("Firmware_Version")]
                    )
                out.append(self._status(servo, 0, params))
            return out
        if inst == P.INST_READ:
            addr, length = (prm[0] | prm[1] << 8, prm[2] | prm[3] << 8) if dxl else (prm[0], prm[1])
            return [self._status(s, 0, s.read(addr, length)) for s in targets if not broadcast]
        if inst in (P.INST_WRITE, P.INST_REG_WRITE):
            addr, data = (prm[0] | prm[1] << 8, prm[2:]) if dxl else (prm[0], prm[1:])
            out = []
            for servo in targets:
                old_id, old_baud = servo.motor_id, servo.get("Baud_Rate")
                error = servo.write(addr, data)
                if not broadcast:
                    # the reply still comes from the old id / at the old baud rate
                    new_id, new_baud = servo.motor_id, servo.get("Baud_Rate")
                    servo._set("ID", old_id)
                    servo._set("Baud_Rate", old_baud)
                    out.append(self._status(servo, error))
                    servo._set("ID", new_id)
                    servo._set("Baud_Rate", new_baud)
            return out
        if inst == P.INST_SYNC_READ:
            addr, length, ids = (
                (prm[0] | prm[1] << 8, prm[2] | prm[3] << 8, prm[4:]) if dxl else (prm[0], prm[1], prm[2:])
            )
            return [self._status(by_id[i], 0, by_id[i].read(addr, length)) for i in ids if i in by_id]
        if inst == P.INST_SYNC_WRITE:
            addr, length, rest = (
                (prm[0] | prm[1] << 8, prm[2] | prm[3] << 8, prm[4:]) if dxl else (prm[0], prm[1], prm[2:])
            )
            for i in range(0, len(rest) - length, length + 1):
                servo = by_id.get(rest[i])
                if servo is not None:
                    servo.write(addr, rest[i + 1 : i + 1 + length])
            return []
        if inst in (P.INST_ACTION, P.INST_REBOOT):
            return [self._status(s, 0) for s in targets if not broadcast and inst != P.INST_ACTION]
        # unknown instruction: Dynamixel reports it, Feetech stays quiet
        return [self._status(s, DXL_ERR_INSTRUCTION) for s in targets if dxl and not broadcast]
