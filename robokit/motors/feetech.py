"""Feetech SCS/STS servos (STS3215 & co., protocol 0) through `feetech-servo-sdk` (module `scservo_sdk`)."""

from __future__ import annotations

import logging
import time
from typing import Any

from robokit.motors import protocol as P
from robokit.motors.motors_bus import _PORT_ERRORS, MotorsBus, PortLostError

logger = logging.getLogger(__name__)


def _import_sdk():
    try:
        import scservo_sdk
    except ImportError as exc:
        raise ImportError("Feetech servos need `feetech-servo-sdk`: pip install 'robokit[hardware]'") from exc
    return scservo_sdk


class FeetechMotorsBus(MotorsBus):
    protocol = "feetech"

    def _sdk(self) -> Any:
        return _import_sdk()

    def _new_packet_handler(self) -> Any:
        return self._sdk().PacketHandler(0)  # 0: little-endian words (STS series)

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
