"""Dynamixel protocol 2.0 servos (X series: XL330, XL430, XM430, XM540) through `dynamixel-sdk`."""

from __future__ import annotations

from typing import Any

from robokit.errors import install_hint
from robokit.motors.motors_bus import MotorsBus


def _import_sdk():
    try:
        import dynamixel_sdk
    except ImportError as exc:
        raise ImportError(f"Dynamixel servos need `dynamixel-sdk`: {install_hint('hardware')}") from exc
    return dynamixel_sdk


def _stuffing_fixed_handler():
    """The SDK's protocol 2.0 handler with byte stuffing that reaches the wire.

    dynamixel-sdk 4.1.0's `addStuffing` builds the stuffed packet in a new list when the length
    grows and returns it, but `txPacket` ignores the return value, so a packet whose parameters
    contain FF FF FD goes out unstuffed (and a motor would cut it at a false header). Here the
    stuffed bytes are copied back into the caller's list.
    """
    from dynamixel_sdk.protocol2_packet_handler import Protocol2PacketHandler

    class _Handler(Protocol2PacketHandler):
        def addStuffing(self, packet):
            stuffed = super().addStuffing(list(packet))
            packet[:] = stuffed
            return packet

    return _Handler()


class DynamixelMotorsBus(MotorsBus):
    protocol = "dynamixel"

    def _sdk(self) -> Any:
        return _import_sdk()

    def _new_packet_handler(self) -> Any:
        return _stuffing_fixed_handler()

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
