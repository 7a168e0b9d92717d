"""Packets byte for byte: published examples, and parity with what the vendors' SDKs put on the wire."""

import os
import time
import tty

import pytest

from robokit.motors import protocol as P


def test_feetech_packets():
    # ping of id 1: FF FF 01 02 01 ~(1+2+1)
    assert P.feetech_encode(1, P.INST_PING) == bytes.fromhex("ffff010201fb")
    # read 2 bytes at 56 (Present_Position) of id 1
    pkt = P.feetech_encode(1, P.INST_READ, bytes([56, 2]))
    assert pkt == bytes.fromhex("ffff0104023802") + bytes([~(1 + 4 + 2 + 56 + 2) & 0xFF])
    decoded, used = P.feetech_decode(b"\x00\x13" + pkt)
    assert used == len(pkt) + 2 and decoded == P.Packet(1, P.INST_READ, bytes([56, 2]))
    with pytest.raises(P.PacketError, match="checksum"):
        P.feetech_decode(pkt[:-1] + bytes([pkt[-1] ^ 1]))
    assert P.feetech_decode(pkt[:5]) == (None, 0)


def test_dynamixel_examples_from_the_e_manual():
    # ROBOTIS e-Manual, protocol 2.0: ping of id 1, its status (model 1030, firmware 38), read of 4 bytes at 132
    assert P.dynamixel_encode(1, P.INST_PING) == bytes.fromhex("fffffd0001030001194e")
    status = bytes.fromhex("fffffd000107005500060426655d")
    assert P.dynamixel_decode(status, status=True)[0] == P.Packet(1, 0, bytes([0x06, 0x04, 0x26]))
    assert P.dynamixel_encode(1, P.INST_READ, bytes([132, 0, 4, 0])) == bytes.fromhex(
        "fffffd0001070002840004001d15"
    )
    assert P.dynamixel_crc(bytes.fromhex("fffffd0001030001")) == 0x4E19
    assert P.dynamixel_encode(1, P.INST_STATUS, bytes([0x06, 0x04, 0x26]), error=0) == status


def test_dynamixel_byte_stuffing_round_trip():
    params = bytes([0x74, 0x00, 0xFF, 0xFF, 0xFD, 0x01])
    pkt = P.dynamixel_encode(3, P.INST_WRITE, params)
    assert b"\xff\xff\xfd\xfd" in pkt[7:]  # the stuffed FD
    assert pkt[5] | pkt[6] << 8 == 1 + len(params) + 1 + 2  # LEN counts the stuffed byte
    assert P.dynamixel_decode(pkt, status=False)[0] == P.Packet(3, P.INST_WRITE, params)


def _capture(write_fn):
    """Bytes an SDK writes to a real pty."""
    import serial

    master, slave = os.openpty()
    tty.setraw(slave)
    ser = serial.Serial(os.ttyname(slave), 1_000_000, timeout=0)
    try:
        write_fn(ser)
        time.sleep(0.01)
        return os.read(master, 4096)
    finally:
        ser.close()
        os.close(master)
        os.close(slave)


class _Port:
    def __init__(self, ser):
        self.ser, self.is_using, self.baudrate, self.tx_time_per_byte = ser, False, 1_000_000, 0.01

    def clearPort(self): ...
    def writePort(self, data):
        return self.ser.write(bytes(data))

    def setPacketTimeout(self, n): ...
    def getBaudRate(self):
        return self.baudrate


def test_sdk_parity_feetech():
    scs = pytest.importorskip("scservo_sdk")
    ph = scs.PacketHandler(0)
    wire = _capture(lambda ser: ph.syncWriteTxOnly(_Port(ser), 42, 2, [1, 0x10, 0x02, 2, 0x20, 0x03], 6))
    assert wire == P.feetech_encode(
        P.BROADCAST_ID, P.INST_SYNC_WRITE, bytes([42, 2, 1, 0x10, 0x02, 2, 0x20, 0x03])
    )
    wire = _capture(lambda ser: ph.write2ByteTxOnly(_Port(ser), 5, 42, 0x0312))
    assert wire == P.feetech_encode(5, P.INST_WRITE, bytes([42, 0x12, 0x03]))


def test_sdk_parity_dynamixel():
    dxl = pytest.importorskip("dynamixel_sdk")
    ph = dxl.PacketHandler(2.0)
    params = [1, 0x10, 0x02, 0x00, 0x00, 2, 0x00, 0x10, 0x00, 0x00]
    wire = _capture(lambda ser: ph.syncWriteTxOnly(_Port(ser), 116, 4, params, len(params)))
    assert wire == P.dynamixel_encode(P.BROADCAST_ID, P.INST_SYNC_WRITE, bytes([116, 0, 4, 0, *params]))
    wire = _capture(lambda ser: ph.syncReadTx(_Port(ser), 132, 4, [1, 2, 3], 3, False))
    assert wire == P.dynamixel_encode(P.BROADCAST_ID, P.INST_SYNC_READ, bytes([132, 0, 4, 0, 1, 2, 3]))


def test_dynamixel_stuffing_reaches_the_wire():
    """dynamixel-sdk 4.1.0 drops byte stuffing; the bus's handler puts it back."""
    from robokit.motors.dynamixel import _stuffing_fixed_handler

    params = [1, 0xFF, 0xFF, 0xFD, 0x00, 2, 0x00, 0x10, 0x00, 0x00]
    expected = P.dynamixel_encode(P.BROADCAST_ID, P.INST_SYNC_WRITE, bytes([116, 0, 4, 0, *params]))
    wire = _capture(
        lambda ser: _stuffing_fixed_handler().syncWriteTxOnly(_Port(ser), 116, 4, params, len(params))
    )
    assert wire == expected
