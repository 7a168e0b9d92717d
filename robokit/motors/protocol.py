"""Packet codecs of the two servo protocols, byte for byte.

Feetech SCS/STS "protocol 0" (the Dynamixel 1.0 frame with Feetech's instruction set):

    instruction  FF FF | ID | LEN | INST | PARAMS... | CHK      LEN = len(PARAMS) + 2
    status       FF FF | ID | LEN | ERR  | PARAMS... | CHK      CHK = ~(ID + LEN + INST/ERR + PARAMS) & 0xFF

Dynamixel protocol 2.0:

    instruction  FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAMS... | CRC_L CRC_H
    status       FF FF FD 00 | ID | LEN_L LEN_H | 55 | ERR | PARAMS... | CRC_L CRC_H
    LEN = len(INST.. PARAMS) + 2 (after byte stuffing); CRC-16 (poly 0x8005, init 0) over everything
    before it. Stuffing: inside INST..PARAMS, every FF FF FD gets an extra FD.

Both the emulator and robokit's own broadcast ping use these; the buses otherwise send through
the vendors' SDKs, and the tests check that both agree on every byte.
"""

from __future__ import annotations

from dataclasses import dataclass

BROADCAST_ID = 0xFE

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REG_WRITE = 0x04
INST_ACTION = 0x05
INST_FACTORY_RESET = 0x06
INST_REBOOT = 0x08
INST_STATUS = 0x55
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83

INSTRUCTION_NAMES = {
    INST_PING: "ping",
    INST_READ: "read",
    INST_WRITE: "write",
    INST_REG_WRITE: "reg_write",
    INST_ACTION: "action",
    INST_FACTORY_RESET: "factory_reset",
    INST_REBOOT: "reboot",
    INST_SYNC_READ: "sync_read",
    INST_SYNC_WRITE: "sync_write",
}


class PacketError(ValueError):
    """Bytes that are not a valid packet (bad header, length or checksum)."""


@dataclass(frozen=True)
class Packet:
    """A decoded packet: `code` is the instruction (instruction packets) or the error byte (status)."""

    motor_id: int
    code: int
    params: bytes


# -- Feetech (protocol 0) --------------------------------------------------------------------------
def feetech_checksum(body: bytes) -> int:
    """Checksum over ID, LEN, INST/ERR and PARAMS."""
    return ~sum(body) & 0xFF


def feetech_encode(motor_id: int, code: int, params: bytes = b"") -> bytes:
    """An instruction (code = instruction) or status (code = error byte) packet."""
    if not 0 <= motor_id <= 0xFE:
        raise ValueError(f"feetech packet: motor_id={motor_id}, expected 0..254")
    if len(params) > 250:
        raise ValueError(f"feetech packet: {len(params)} parameter bytes, at most 250 fit")
    body = bytes([motor_id, len(params) + 2, code]) + bytes(params)
    return b"\xff\xff" + body + bytes([feetech_checksum(body)])


def feetech_decode(buf: bytes | bytearray) -> tuple[Packet | None, int]:
    """Find the first packet in `buf`: returns (packet or None, bytes consumed).

    Leading garbage is skipped (consumed); an incomplete packet returns (None, bytes skipped so far);
    a packet with a bad checksum raises PacketError after being consumed by the caller's resync.
    """
    start = buf.find(b"\xff\xff")
    while start != -1 and start + 2 < len(buf) and buf[start + 2] == 0xFF:
        start += 1  # FF FF FF ...: the header is the last two FF
    if start == -1:
        return None, max(0, len(buf) - 1)
    if len(buf) < start + 4:
        return None, start
    length = buf[start + 3]
    end = start + 4 + length
    if length < 2:
        raise PacketError(f"feetech packet: LEN={length}, expected >= 2")
    if len(buf) < end:
        return None, start
    body = bytes(buf[start + 2 : end - 1])
    if feetech_checksum(body) != buf[end - 1]:
        raise PacketError(
            f"feetech packet: checksum 0x{buf[end - 1]:02x}, expected 0x{feetech_checksum(body):02x}"
        )
    return Packet(body[0], body[2], body[3:]), end


# -- Dynamixel protocol 2.0 ------------------------------------------------------------------------
def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def dynamixel_crc(data: bytes | bytearray) -> int:
    """CRC-16 of Dynamixel 2.0 (polynomial 0x8005, initial value 0, MSB first)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def _stuff(payload: bytes, prefix: bytes) -> bytes:
    # the FF FF FD pattern may span the header's last bytes; the check uses the bytes already emitted
    out = bytearray(prefix)
    for byte in payload:
        out.append(byte)
        if byte == 0xFD and out[-3:-1] == b"\xff\xff":
            out.append(0xFD)
    return bytes(out[len(prefix) :])


def _unstuff(payload: bytes, prefix: bytes) -> bytes:
    out = bytearray(prefix)
    i = 0
    while i < len(payload):
        byte = payload[i]
        out.append(byte)
        if byte == 0xFD and out[-3:-1] == b"\xff\xff" and i + 1 < len(payload) and payload[i + 1] == 0xFD:
            i += 1  # drop the stuffed FD
        i += 1
    return bytes(out[len(prefix) :])


def dynamixel_encode(motor_id: int, instruction: int, params: bytes = b"", error: int | None = None) -> bytes:
    """An instruction packet, or a status packet when `error` is given (instruction must be 0x55)."""
    if not 0 <= motor_id <= 0xFE:
        raise ValueError(f"dynamixel packet: motor_id={motor_id}, expected 0..254")
    payload = bytes([instruction]) + (bytes([error]) if error is not None else b"") + bytes(params)
    header = bytes([0xFF, 0xFF, 0xFD, 0x00, motor_id])
    # stuffing looks back two bytes, which are LEN_L LEN_H: never FF FF for sane lengths, so pass them
    stuffed = _stuff(payload, b"\x00\x00")
    length = len(stuffed) + 2
    head = header + bytes([length & 0xFF, length >> 8])
    body = head + stuffed
    crc = dynamixel_crc(body)
    return body + bytes([crc & 0xFF, crc >> 8])


def dynamixel_decode(buf: bytes | bytearray, status: bool) -> tuple[Packet | None, int]:
    """First packet in `buf`: (packet or None, bytes consumed). `status` selects the layout."""
    start = buf.find(b"\xff\xff\xfd\x00")
    if start == -1:
        return None, max(0, len(buf) - 3)
    if len(buf) < start + 7:
        return None, start
    motor_id = buf[start + 4]
    length = buf[start + 5] | (buf[start + 6] << 8)
    end = start + 7 + length
    if length < 3:
        raise PacketError(f"dynamixel packet: LEN={length}, expected >= 3")
    if len(buf) < end:
        return None, start
    crc = buf[end - 2] | (buf[end - 1] << 8)
    expected = dynamixel_crc(bytes(buf[start : end - 2]))
    if crc != expected:
        raise PacketError(f"dynamixel packet: CRC 0x{crc:04x}, expected 0x{expected:04x}")
    payload = _unstuff(bytes(buf[start + 7 : end - 2]), b"\x00\x00")
    if status:
        if len(payload) < 2 or payload[0] != INST_STATUS:
            raise PacketError(f"dynamixel status packet: instruction 0x{payload[0]:02x}, expected 0x55")
        return Packet(motor_id, payload[1], payload[2:]), end
    return Packet(motor_id, payload[0], payload[1:]), end
