"""Feetech servos through `feetech-servo-sdk` (module `scservo_sdk`).

`FeetechMotorsBus`: STS/SMS series (STS3215 & co.), Feetech's "protocol 0" (little-endian words).
`FeetechSCSMotorsBus`: SCS series (SCS0009, the Hope-JR hand), "protocol 1" (big-endian words,
1024-step encoders, no homing register).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from typing import Any

from robokit.errors import install_hint
from robokit.motors import protocol as P
from robokit.motors.motors_bus import _PORT_ERRORS, MotorsBus, PortLostError

logger = logging.getLogger(__name__)

# scservo_sdk keeps the byte order of 2-byte values in one module global (PacketHandler(end) sets it
# for every bus in the process). Each bus sets its own for the length of a transaction, under this
# lock, so an STS arm and an SCS hand can share a process (and threads).
_BYTE_ORDER_LOCK = threading.RLock()


def _import_sdk():
    try:
        import scservo_sdk
    except ImportError as exc:
        raise ImportError(f"Feetech servos need `feetech-servo-sdk`: {install_hint('hardware')}") from exc
    return scservo_sdk


class FeetechMotorsBus(MotorsBus):
    protocol = "feetech"
    protocol_end = 0
    """scservo_sdk's byte order of 2-byte values: 0 little-endian (STS/SMS), 1 big-endian (SCS)."""

    def __init__(self, port: str, motors: dict, *args, **kwargs):
        super().__init__(port, motors, *args, **kwargs)
        order = "big" if self.protocol_end else "little"
        for name, spec in self.specs.items():
            if spec.byte_order != order:
                expected = "FeetechSCSMotorsBus" if spec.byte_order == "big" else "FeetechMotorsBus"
                raise ValueError(
                    f"{type(self).__name__} on {port}: motor {name!r} is a {spec.model} "
                    f"({spec.byte_order}-endian registers); it needs a {expected}"
                )

    def _sdk(self) -> Any:
        return _import_sdk()

    def _new_packet_handler(self) -> Any:
        with _BYTE_ORDER_LOCK:  # PacketHandler(end) sets the global: not while another bus transacts
            return self._sdk().PacketHandler(self.protocol_end)

    def _transact(self, what, fn, num_retry):
        set_end = importlib.import_module("scservo_sdk.scservo_def").SCS_SETEND
        with _BYTE_ORDER_LOCK:
            set_end(self.protocol_end)
            return super()._transact(what, fn, num_retry)

    def _homing_offset_for(self, present_with_zero_offset: int, resolution: int) -> int:
        # Feetech: Present_Position = Actual - Homing_Offset
        return present_with_zero_offset - (resolution - 1) // 2

    def broadcast_ping(self, num_retry: int = 0) -> dict[int, int]:
        """Ping id 0xFE and collect every status packet (the SDK has no broadcast ping for this protocol)."""
        self._require_connected()
        for _ in range(1 + num_retry):
            ids, corrupted = self._broadcast_ping_once()
            if not corrupted:
                break
        return {motor_id: self.ping(motor_id, num_retry=self.num_retry) for motor_id in sorted(ids)}

    def _broadcast_ping_once(self) -> tuple[set[int], bool]:
        port = self.port_handler
        try:
            port.clearPort()
            port.ser.reset_input_buffer()
            port.writePort(P.feetech_encode(P.BROADCAST_ID, P.INST_PING))
            # every motor answers with a 6-byte status packet; wait for up to 253 of them plus latency
            deadline = time.monotonic() + (6 * 253 * port.tx_time_per_byte + 40.0) / 1000.0
            buf = bytearray()
            while time.monotonic() < deadline:
                chunk = port.readPort(1024)
                if chunk:
                    buf += chunk
                else:
                    time.sleep(0.001)
        except _PORT_ERRORS as exc:
            raise PortLostError(f"broadcast ping on {self.port}: the port is gone ({exc})") from exc
        ids, corrupted = set(), False
        while buf:
            try:
                packet, used = P.feetech_decode(buf)
            except P.PacketError:
                corrupted = True
                del buf[: buf.find(b"\xff\xff") + 2]
                continue
            if packet is None:
                break
            del buf[:used]
            ids.add(packet.motor_id)
        return ids, corrupted


class FeetechSCSMotorsBus(FeetechMotorsBus):
    """SCS-series servos (SCS0009): big-endian words and no Homing_Offset register.

    A calibration is a range of motion per motor (homing offset 0): the position limits are written
    to the motors, offsets cannot be.
    """

    protocol_end = 1
    has_homing_register = False

    def reset_calibration(self, motors=None) -> None:
        for name in motors or self.motors:
            self.write("Min_Position_Limit", name, 0, normalize=False)
            self.write("Max_Position_Limit", name, self.specs[name].resolution - 1, normalize=False)

    def set_half_turn_homings(self, motors=None) -> dict[str, int]:
        raise NotImplementedError(
            f"{type(self).__name__}: SCS servos have no homing register; calibrate ranges of motion only"
        )
