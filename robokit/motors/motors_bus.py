"""A servo bus addressed by motor name and register name, over a vendor SDK.

    bus = FeetechMotorsBus("/dev/ttyACM0", {"shoulder_pan": Motor(1, "sts3215", MotorNormMode.RANGE_M100_100), ...})
    bus.connect()                                   # opens the port, pings every motor
    bus.sync_read("Present_Position")               # {"shoulder_pan": 12.3, ...} (normalized)
    bus.sync_write("Goal_Position", {"shoulder_pan": 10.0})
    bus.disconnect()                                # torque off, port closed

Every transaction is retried `num_retry` times on a timeout or a corrupted reply; after the last
one a `CommunicationError` names the operation, register, motor(s) and port. A corrupted reply is
never returned as a value. A vanished port (adapter unplugged) raises `PortLostError` at once.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import select
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from robokit.errors import HardwareSetupError, NotCalibratedError
from robokit.motors.calibration import MotorCalibration, MotorNormMode, normalize, unnormalize
from robokit.motors.tables import (
    MODEL_BY_NUMBER,
    ModelSpec,
    baudrate_table,
    decode_value,
    encode_value,
    model_spec,
)

logger = logging.getLogger(__name__)

try:  # a pty / tty that vanished fails in termios calls (tcdrain) rather than with an OSError
    from termios import error as _TermiosError
except ImportError:  # Windows
    _TermiosError = OSError
_PORT_ERRORS = (OSError, _TermiosError)  # serial.SerialException is an OSError

NORMALIZED_REGISTERS = ("Present_Position", "Goal_Position")


@dataclass
class Motor:
    id: int
    model: str
    norm_mode: MotorNormMode = MotorNormMode.RANGE_M100_100


class CommunicationError(ConnectionError):
    """A transaction failed after every retry (timeout, corrupted reply, status error).

    `corrupted` and `unanswered` count the attempts whose reply failed its checksum / CRC and
    those that got no reply, so a caller can tell a garbled bus from a silent one.
    """

    def __init__(self, message: str, corrupted: int = 0, unanswered: int = 0):
        super().__init__(message)
        self.corrupted, self.unanswered = corrupted, unanswered


class PortLostError(CommunicationError):
    """The serial port disappeared (adapter unplugged, pty closed)."""


class MotorsBus(abc.ABC):
    """Shared logic of the Feetech and Dynamixel buses; subclasses bind an SDK."""

    protocol: str = ""
    default_timeout_ms: int = 0
    """0: the SDK's own packet timeout."""
    has_homing_register: bool = True
    """False for servos without Homing_Offset (Feetech SCS): a calibration is then only a range of motion."""

    def __init__(
        self,
        port: str,
        motors: dict[str, Motor],
        calibration: dict[str, MotorCalibration] | None = None,
        num_retry: int = 3,
        baudrate: int = 1_000_000,
        extra_timeout_ms: float | None = None,
    ):
        self.port = port
        if extra_timeout_ms is None:
            # the SDKs' timeouts assume a dedicated USB adapter; an emulator behind a pty shares the
            # host's CPU with everything else, so its replies can be late by a scheduler slice or two
            extra_timeout_ms = 100.0 if port.startswith("/dev/pts/") else 20.0
        self.extra_timeout_ms = extra_timeout_ms
        """Added to the SDK's reply timeout."""
        self.motors = dict(motors)
        self.calibration = dict(calibration or {})
        self.num_retry = num_retry
        self.baudrate = baudrate
        ids = [m.id for m in self.motors.values()]
        if len(set(ids)) != len(ids):
            raise ValueError(f"bus {port}: duplicate motor ids {sorted(ids)}")
        self.specs: dict[str, ModelSpec] = {name: model_spec(m.model) for name, m in self.motors.items()}
        for name, spec in self.specs.items():
            if spec.protocol != self.protocol:
                raise ValueError(
                    f"bus {port}: motor {name!r} model {spec.model!r} speaks {spec.protocol}, this is a {self.protocol} bus"
                )
        self._id_to_name = {m.id: name for name, m in self.motors.items()}
        self.port_handler = None
        self.packet_handler = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port!r}, motors={list(self.motors)})"

    # -- SDK binding (subclasses) ------------------------------------------------------------------
    @abc.abstractmethod
    def _sdk(self) -> Any:
        """The SDK module (PortHandler, PacketHandler, GroupSyncRead, GroupSyncWrite, COMM_SUCCESS)."""

    @abc.abstractmethod
    def _new_packet_handler(self) -> Any: ...

    @abc.abstractmethod
    def broadcast_ping(self, num_retry: int = 0) -> dict[int, int]:
        """`{id: model_number}` of every motor answering at the current baud rate."""

    @abc.abstractmethod
    def _homing_offset_for(self, present_with_zero_offset: int, resolution: int) -> int:
        """The Homing_Offset that makes the current position read as half a turn."""

    # -- connection --------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.port_handler is not None and bool(self.port_handler.is_open)

    def connect(self, handshake: bool = True) -> None:
        if self.is_connected:
            raise RuntimeError(f"{self!r} is already connected")
        sdk = self._sdk()
        extra_ms = self.extra_timeout_ms

        class _PortHandler(sdk.PortHandler):
            def setPacketTimeout(self, packet_length):
                super().setPacketTimeout(packet_length)
                self.packet_timeout += extra_ms

            def readPort(self, length):
                # the SDKs poll a non-blocking port in a tight loop; waiting up to 0.5 ms for the
                # next bytes keeps a CPU free (for the servo emulator, or other work) at no latency cost
                data = self.ser.read(length)
                if not data:
                    select.select([self.ser.fd], [], [], 0.0005)
                    data = self.ser.read(length)
                return data

        self.port_handler = _PortHandler(self.port)
        self.packet_handler = self._new_packet_handler()
        try:
            opened = self.port_handler.openPort()
        except Exception as exc:  # serial.SerialException and OSError
            self.port_handler = None
            raise ConnectionError(
                f"could not open servo port {self.port!r}: {exc}. Is the adapter plugged in? "
                "`robokit find-port` lists ports; `robokit virtual-arm so101` starts an emulated one"
            ) from exc
        if not opened:
            self.port_handler = None
            raise ConnectionError(f"could not open servo port {self.port!r}")
        self.set_baudrate(self.baudrate)
        if handshake:
            self._handshake()
        logger.debug("%r connected", self)

    def set_baudrate(self, baudrate: int) -> None:
        if baudrate not in baudrate_table(self.protocol):
            raise ValueError(
                f"{self.protocol} bus: baudrate={baudrate}, expected one of {sorted(baudrate_table(self.protocol))}"
            )
        if not self.port_handler.setBaudRate(baudrate):
            raise ConnectionError(f"port {self.port}: could not set baud rate {baudrate}")
        self.baudrate = baudrate

    def _ping_result(self, name: str, num_retry: int) -> int | CommunicationError:
        try:
            return self.ping(name, num_retry=num_retry)
        except PortLostError:
            raise
        except CommunicationError as exc:
            return exc

    def _handshake(self) -> None:
        """Ping every motor and check its model; name each fault as it is (silent, garbled, wrong model).

        Every motor gets one try first and only the failures are retried (1 + num_retry attempts
        in all), and a bus on which no motor answers at all (unpowered, unplugged chain, wrong baud
        rate) is given up after the first motor's retries: a dead bus is reported in about a
        second, not after every retry of every motor.
        """
        results = {name: self._ping_result(name, num_retry=0) for name in self.motors}
        alive = any(not isinstance(r, CommunicationError) or r.corrupted for r in results.values())
        retry = [name for name, r in results.items() if isinstance(r, CommunicationError)]
        if not alive and retry:
            retry = retry[:1]  # one motor with every retry tells a slow start from a dead bus
        more = max(0, self.num_retry - 1)  # with the first try, each motor gets 1 + num_retry attempts
        for name in retry:
            results[name] = self._ping_result(name, num_retry=more)
            if not isinstance(results[name], CommunicationError):  # a slow start after all: retry all
                alive = True
        if alive:
            for name, result in results.items():
                if isinstance(result, CommunicationError) and name not in retry:
                    results[name] = self._ping_result(name, num_retry=more)
        missing, garbled, wrong = [], [], []
        corrupted = tries = 0
        for name, result in results.items():
            label = f"{name!r} (id {self.motors[name].id})"
            if isinstance(result, CommunicationError):
                if result.corrupted:
                    garbled.append(label)
                    corrupted += result.corrupted
                    tries += result.corrupted + result.unanswered
                else:
                    missing.append(label)
            elif result != self.specs[name].model_number:
                found = MODEL_BY_NUMBER.get((self.protocol, result))
                wrong.append(f"{label} is {found.model if found else result}, expected {self.motors[name].model}")
        if missing or garbled or wrong:
            self.disconnect(disable_torque=False)
            problems, advice = [], []
            if garbled:
                problems.append(f"corrupted replies from {', '.join(garbled)} ({corrupted} of {tries} failed "
                                "their checksum)")
                advice.append("the motors answer but their replies arrive damaged: check the data cable and "
                              f"connectors, electrical noise, and that every motor uses {self.baudrate} baud")
            if missing:
                problems.append(f"no answer from {', '.join(missing)}")
                advice.append("check the wiring and power, or assign ids with `robokit setup-motors`")
            if wrong:
                problems += wrong
                advice.append("check the motor models of this robot type")
            raise ConnectionError(
                f"{type(self).__name__} on {self.port} at {self.baudrate} baud: {'; '.join(problems)}. "
                + "; ".join(advice).capitalize()
            )

    def disconnect(self, disable_torque: bool = True) -> None:
        if not self.is_connected:
            return
        if disable_torque:
            try:
                self.disable_torque(num_retry=1)
            except CommunicationError as exc:
                logger.warning("%s: could not release torque while disconnecting: %s", self.port, exc)
        try:
            self.port_handler.closePort()
        except Exception:  # the port may already be gone
            pass
        self.port_handler = None

    # -- transactions with retries ------------------------------------------------------------------
    def _require_connected(self) -> None:
        if not self.is_connected:
            raise RuntimeError(f"{self!r} is not connected; call connect() first")

    def _transact(self, what: str, fn: Callable[[], tuple[Any, int, int]], num_retry: int | None) -> Any:
        """Run `fn` (returning (value, comm_result, status_error)) with retries; raise a named error."""
        self._require_connected()
        sdk = self._sdk()
        attempts = 1 + (self.num_retry if num_retry is None else num_retry)
        comm, error = sdk.COMM_SUCCESS, 0
        corrupted = unanswered = 0
        for _ in range(attempts):
            self.port_handler.is_using = False  # an earlier exception may have left the port "busy"
            try:
                # stale bytes (a late reply to a timed-out request) must not be taken for this reply
                self.port_handler.ser.reset_input_buffer()
                value, comm, error = fn()
            except _PORT_ERRORS as exc:
                raise PortLostError(
                    f"{what} on {self.port}: the port is gone ({exc}); was the adapter unplugged?"
                ) from exc
            except IndexError:  # the SDK indexes into a reply shorter than expected: a corrupted reply
                value, comm, error = None, sdk.COMM_RX_CORRUPT, 0
            if comm == sdk.COMM_SUCCESS and error == 0:
                return value
            if comm == sdk.COMM_RX_CORRUPT:
                corrupted += 1
            elif comm in (sdk.COMM_RX_TIMEOUT, sdk.COMM_RX_FAIL):
                unanswered += 1
        if corrupted:
            reason = (f"{corrupted} of {attempts} replies failed their checksum"
                      + (f" and {unanswered} never came" if unanswered else "")
                      + " (the motors answer, but the bytes arrive damaged: check the data cable and "
                      "connectors, electrical noise, and the baud rate)")
        elif comm != sdk.COMM_SUCCESS:
            reason = self.packet_handler.getTxRxResult(comm).removeprefix("[TxRxResult] ")
            if unanswered == attempts:
                reason = f"no reply ({reason}): check the wiring and power"
        else:
            reason = f"the motor reported an error: {self.packet_handler.getRxPacketError(error).removeprefix('[RxPacketError] ')}"
        raise CommunicationError(f"{what} on {self.port} failed after {attempts} attempt(s): {reason}",
                                 corrupted, unanswered)

    def _motor(self, motor: str | int) -> tuple[str, int]:
        if isinstance(motor, int):
            return self._id_to_name.get(motor, f"id{motor}"), motor
        if motor not in self.motors:
            import difflib

            close = difflib.get_close_matches(motor, self.motors, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"bus {self.port}: no motor named {motor!r}; motors: {list(self.motors)}.{hint}")
        return motor, self.motors[motor].id

    def _register(self, register: str, name: str | None = None) -> tuple[int, int]:
        table = (self.specs[name] if name in self.specs else next(iter(self.specs.values()))).table
        if register not in table:
            import difflib

            close = difflib.get_close_matches(register, table, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"{self.protocol} control table has no register {register!r}.{hint}")
        return table[register]

    def ping(self, motor: str | int, num_retry: int = 0, raise_on_error: bool = True) -> int | None:
        """The model number of `motor`, or None (or an error) when it does not answer."""
        name, motor_id = self._motor(motor)
        try:
            return self._transact(
                f"ping of motor {name!r} (id {motor_id})",
                lambda: self.packet_handler.ping(self.port_handler, motor_id),
                num_retry,
            )
        except PortLostError:
            raise
        except CommunicationError:
            if raise_on_error:
                raise
            return None

    def scan(self, baudrates: Iterable[int] | None = None) -> dict[int, dict[int, int]]:
        """Broadcast ping at each baud rate: `{baudrate: {id: model_number}}` (only rates with motors)."""
        found = {}
        original = self.baudrate
        for baud in baudrates or baudrate_table(self.protocol):
            self.set_baudrate(baud)
            motors = self.broadcast_ping()
            if motors:
                found[baud] = motors
        self.set_baudrate(original)
        return found

    def read(
        self, register: str, motor: str | int, normalize: bool = True, num_retry: int | None = None
    ) -> float | int:
        name, motor_id = self._motor(motor)
        addr, size = self._register(register, name)
        read_fn = getattr(self.packet_handler, f"read{size}ByteTxRx")
        raw = self._transact(
            f"read of {register} from motor {name!r} (id {motor_id})",
            lambda: read_fn(self.port_handler, motor_id, addr),
            num_retry,
        )
        value = decode_value(self.protocol, register, raw, size)
        return self._normalize_one(name, register, value) if normalize else value

    def write(
        self,
        register: str,
        motor: str | int,
        value: float,
        normalize: bool = True,
        num_retry: int | None = None,
    ) -> None:
        name, motor_id = self._motor(motor)
        addr, size = self._register(register, name)
        raw = self._raw_value(name, register, value, normalize)
        data = encode_value(self.protocol, register, raw, size)
        write_fn = getattr(self.packet_handler, f"write{size}ByteTxRx")
        self._transact(
            f"write of {register}={value} to motor {name!r} (id {motor_id})",
            lambda: (None, *write_fn(self.port_handler, motor_id, addr, data)),
            num_retry,
        )

    def sync_read(
        self,
        register: str,
        motors: Iterable[str] | None = None,
        normalize: bool = True,
        num_retry: int | None = None,
    ) -> dict[str, float | int]:
        """Read one register of many motors in one transaction: `{name: value}`."""
        names = list(motors) if motors is not None else list(self.motors)
        addr, size = self._register(register, names[0] if names else None)
        sdk = self._sdk()
        group = sdk.GroupSyncRead(self.port_handler, self.packet_handler, addr, size)
        for name in names:
            group.addParam(self._motor(name)[1])

        def run():
            comm = group.txRxPacket()
            if comm != sdk.COMM_SUCCESS:
                return None, comm, 0
            values = {}
            for name in names:
                motor_id = self.motors[name].id
                if not group.isAvailable(motor_id, addr, size):
                    return None, sdk.COMM_RX_CORRUPT, 0
                values[name] = group.getData(motor_id, addr, size)
            return values, comm, 0

        ids = ", ".join(f"{n!r} (id {self.motors[n].id})" for n in names)
        raw = self._transact(f"sync read of {register} from motors {ids}", run, num_retry)
        values = {name: decode_value(self.protocol, register, v, size) for name, v in raw.items()}
        if normalize:
            return {name: self._normalize_one(name, register, v) for name, v in values.items()}
        return values

    def sync_write(
        self, register: str, values: dict[str, float], normalize: bool = True, num_retry: int | None = None
    ) -> None:
        """Write one register of many motors in one packet (no reply, so no retry on the motors' side)."""
        if not values:
            return
        addr, size = self._register(register, next(iter(values)))
        sdk = self._sdk()
        group = sdk.GroupSyncWrite(self.port_handler, self.packet_handler, addr, size)
        for name, value in values.items():
            _, motor_id = self._motor(name)
            raw = self._raw_value(name, register, value, normalize)
            data = encode_value(self.protocol, register, raw, size)
            group.addParam(motor_id, list(data.to_bytes(size, self.specs[name].byte_order)))
        self._transact(
            f"sync write of {register} to motors {list(values)}",
            lambda: (None, group.txPacket(), 0),
            num_retry,
        )

    # -- normalization ---------------------------------------------------------------------------
    def _raw_value(self, name: str, register: str, value: float, normalize: bool) -> int:
        """The register value to write; a non-finite value is refused by motor name before any byte is sent."""
        if not math.isfinite(value):
            raise ValueError(f"bus {self.port}: {register}={value} for motor {name!r} is not a finite number")
        return self._unnormalize_one(name, register, value) if normalize else int(value)

    def _normalize_one(self, name: str, register: str, value: int) -> float | int:
        if register not in NORMALIZED_REGISTERS:
            return value
        if name not in self.calibration:
            raise NotCalibratedError(
                f"bus {self.port}: motor {name!r} has no calibration, so {register} cannot be "
                "normalized; run `robokit calibrate` (or read with normalize=False)"
            )
        return normalize(
            value, self.calibration[name], self.motors[name].norm_mode, self.specs[name].resolution
        )

    def _unnormalize_one(self, name: str, register: str, value: float) -> int:
        if register not in NORMALIZED_REGISTERS:
            return int(value)
        if name not in self.calibration:
            raise NotCalibratedError(
                f"bus {self.port}: motor {name!r} has no calibration, so {register}={value} cannot be "
                "converted to steps; run `robokit calibrate` (or write with normalize=False)"
            )
        return unnormalize(
            value, self.calibration[name], self.motors[name].norm_mode, self.specs[name].resolution
        )

    # -- torque and modes ------------------------------------------------------------------------
    def enable_torque(self, motors: Iterable[str] | None = None, num_retry: int | None = None) -> None:
        for name in motors or self.motors:
            self.write("Torque_Enable", name, 1, normalize=False, num_retry=num_retry)

    def disable_torque(self, motors: Iterable[str] | None = None, num_retry: int | None = None) -> None:
        for name in motors or self.motors:
            self.write("Torque_Enable", name, 0, normalize=False, num_retry=num_retry)

    @contextlib.contextmanager
    def torque_disabled(self, motors: Iterable[str] | None = None):
        motors = list(motors or self.motors)
        self.disable_torque(motors)
        try:
            yield
        finally:
            self.enable_torque(motors)

    # -- calibration -----------------------------------------------------------------------------
    def read_calibration(self) -> dict[str, MotorCalibration]:
        """The calibration stored in the motors' registers (drive_mode from the loaded calibration)."""
        offsets = (self.sync_read("Homing_Offset", normalize=False) if self.has_homing_register
                   else dict.fromkeys(self.motors, 0))
        mins = self.sync_read("Min_Position_Limit", normalize=False)
        maxs = self.sync_read("Max_Position_Limit", normalize=False)
        return {
            name: MotorCalibration(
                id=m.id,
                drive_mode=self.calibration[name].drive_mode if name in self.calibration else 0,
                homing_offset=int(offsets[name]),
                range_min=int(mins[name]),
                range_max=int(maxs[name]),
            )
            for name, m in self.motors.items()
        }

    def write_calibration(self, calibration: dict[str, MotorCalibration]) -> None:
        """Write homing offsets and position limits to the motors and keep `calibration`."""
        for name, cal in calibration.items():
            if name not in self.motors:
                raise KeyError(f"calibration names motor {name!r}, the bus has {list(self.motors)}")
            if self.has_homing_register:
                self.write("Homing_Offset", name, cal.homing_offset, normalize=False)
            elif cal.homing_offset != 0:
                raise ValueError(
                    f"calibration of {name!r}: homing_offset={cal.homing_offset}, but "
                    f"{self.motors[name].model} servos have no homing register; expected 0"
                )
            self.write("Min_Position_Limit", name, cal.range_min, normalize=False)
            self.write("Max_Position_Limit", name, cal.range_max, normalize=False)
        self.calibration = dict(calibration)

    def calibration_mismatches(self, calibration: dict[str, MotorCalibration] | None = None) -> list[str]:
        """Differences between `calibration` (default: the loaded one) and the motors; [] when they match."""
        calibration = self.calibration if calibration is None else calibration
        problems = []
        if set(calibration) != set(self.motors):
            problems.append(
                f"calibration has motors {sorted(calibration)}, the bus has {sorted(self.motors)}"
            )
            return problems
        for name, cal in calibration.items():
            if cal.id != self.motors[name].id:
                problems.append(f"{name!r}: calibration id {cal.id}, bus id {self.motors[name].id}")
        if problems:
            return problems
        found = self.read_calibration()
        for name, cal in calibration.items():
            for key in ("homing_offset", "range_min", "range_max"):
                if getattr(cal, key) != getattr(found[name], key):
                    problems.append(
                        f"{name!r}: {key} is {getattr(found[name], key)} in the motor, {getattr(cal, key)} in the file"
                    )
        return problems

    def reset_calibration(self, motors: Iterable[str] | None = None) -> None:
        for name in motors or self.motors:
            res = self.specs[name].resolution
            self.write("Homing_Offset", name, 0, normalize=False)
            self.write("Min_Position_Limit", name, 0, normalize=False)
            self.write("Max_Position_Limit", name, res - 1, normalize=False)

    def set_half_turn_homings(self, motors: Iterable[str] | None = None) -> dict[str, int]:
        """Set homing offsets so the current pose reads as the middle of the encoder range."""
        motors = list(motors or self.motors)
        self.reset_calibration(motors)
        present = self.sync_read("Present_Position", motors, normalize=False)
        offsets = {
            name: self._homing_offset_for(int(present[name]), self.specs[name].resolution) for name in motors
        }
        for name, offset in offsets.items():
            self.write("Homing_Offset", name, offset, normalize=False)
        return offsets

    def record_ranges_of_motion(
        self,
        motors: Iterable[str] | None = None,
        stop: Callable[[], bool] | None = None,
        poll_s: float = 0.02,
        display: bool = False,
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Track min / max raw positions while the user sweeps each joint, until `stop()` is true."""
        motors = list(motors or self.motors)
        start = self.sync_read("Present_Position", motors, normalize=False)
        mins, maxs = dict(start), dict(start)
        while True:
            now = self.sync_read("Present_Position", motors, normalize=False)
            for name, value in now.items():
                mins[name] = min(mins[name], value)
                maxs[name] = max(maxs[name], value)
            if display:
                print("\r" + "  ".join(f"{n}: {mins[n]}..{maxs[n]}" for n in motors), end="", flush=True)
            if stop is not None and stop():
                break
            time.sleep(poll_s)
        if display:
            print()
        flat = [name for name in motors if mins[name] == maxs[name]]
        if flat:
            raise ValueError(
                f"joints {', '.join(map(repr, flat))} did not move while the ranges of motion were recorded; "
                "move every joint through its whole range before pressing ENTER, and calibrate again"
            )
        return {n: int(v) for n, v in mins.items()}, {n: int(v) for n, v in maxs.items()}

    # -- motor setup ---------------------------------------------------------------------------
    def setup_motor(
        self, motor: str, initial_baudrate: int | None = None, initial_id: int | None = None
    ) -> None:
        """Give the single motor connected to the bus the id and baud rate this bus expects.

        The motor is found by scanning all baud rates (unless `initial_baudrate` / `initial_id` are given);
        exactly one motor may be connected, as during first-time assembly.
        """
        name, target_id = self._motor(motor)
        if initial_baudrate is None or initial_id is None:
            found = self.scan()
            flat = [(baud, mid, model) for baud, ms in found.items() for mid, model in ms.items()]
            if len(flat) != 1:
                self.set_baudrate(self.baudrate)
                raise HardwareSetupError(
                    f"setup_motor({name!r}): expected exactly one motor on {self.port}, found {len(flat)} "
                    f"({flat}); connect only the {name} motor"
                )
            initial_baudrate, initial_id, model_number = flat[0]
            if model_number != self.specs[name].model_number:
                found_model = MODEL_BY_NUMBER.get((self.protocol, model_number))
                raise HardwareSetupError(
                    f"setup_motor({name!r}): found a {found_model.model if found_model else model_number}, "
                    f"expected {self.motors[name].model}"
                )
        target_baud = self.baudrate
        self.set_baudrate(initial_baudrate)
        self._motor_id_override(initial_id, "Torque_Enable", 0)
        self._motor_id_override(initial_id, "ID", target_id)
        self._motor_id_override(target_id, "Baud_Rate", baudrate_table(self.protocol)[target_baud])
        self.set_baudrate(target_baud)
        if self.ping(name, num_retry=2, raise_on_error=False) is None:
            raise HardwareSetupError(
                f"setup_motor({name!r}): the motor does not answer at id {target_id}, {target_baud} baud after setup"
            )
        logger.info(
            "motor %r: id %d -> %d, baud %d -> %d", name, initial_id, target_id, initial_baudrate, target_baud
        )

    def _motor_id_override(self, motor_id: int, register: str, value: int) -> None:
        addr, size = self._register(register)
        write_fn = getattr(self.packet_handler, f"write{size}ByteTxRx")
        self._transact(
            f"write of {register}={value} to motor id {motor_id}",
            lambda: (None, *write_fn(self.port_handler, motor_id, addr, value)),
            None,
        )
