"""Dynamixel protocol 2.0 servos (X series: XL330, XL430, XM430, XM540) through `dynamixel-sdk`."""

from __future__ import annotations

from typing import Any

from robokit.motors.motors_bus import MotorsBus


def _import_sdk():
    try:
        import dynamixel_sdk
    except ImportError as exc:
        raise ImportError("Dynamixel servos need `dynamixel-sdk`: pip install 'robokit[hardware]'") from exc
    return dynamixel_sdk


class DynamixelMotorsBus(MotorsBus):
    protocol = "dynamixel"

    def _sdk(self) -> Any:
        return _import_sdk()

    def _new_packet_handler(self) -> Any:
        return self._sdk().PacketHandler(2.0)

    def _homing_offset_for(self, present_with_zero_offset: int, resolution: int) -> int:
        # Dynamixel: Present_Position = Actual + Homing_Offset
        return (resolution - 1) // 2 - present_with_zero_offset

    def broadcast_ping(self, num_retry: int = 0) -> dict[int, int]:
        def run():
            found, comm = self.packet_handler.broadcastPing(self.port_handler)
            if comm == self._sdk().COMM_RX_TIMEOUT:  # nobody answered: an empty bus, not a failure
                return {}, self._sdk().COMM_SUCCESS, 0
            return {motor_id: info[0] for motor_id, info in found.items()}, comm, 0

        return self._transact("broadcast ping", run, num_retry)
