"""The buses against the emulator: real bytes through a pty, both protocols."""

import time

import pytest

from robokit.motors import CommunicationError, Motor, PortLostError
from robokit.motors.calibration import MotorCalibration


def test_ping_scan_broadcast(chain):
    emulator, bus = chain
    model_number = emulator.servos[0].spec.model_number
    assert bus.ping("joint1") == model_number
    assert bus.broadcast_ping() == {1: model_number, 2: model_number, 3: model_number}
    emulator.faults.silent_ids = {2}
    assert bus.ping("joint2", raise_on_error=False) is None
    assert set(bus.broadcast_ping()) == {1, 3}


def test_scan_finds_motors_at_their_baud_rate(make_chain):
    emulator, bus = make_chain("feetech", n=2)
    emulator.servo(2)._set("Baud_Rate", 4)  # code 4 = 115200 on Feetech
    try:
        bus.connect(handshake=False)
        found = bus.scan([1_000_000, 115_200, 57_600])
        assert found == {1_000_000: {1: 777}, 115_200: {2: 777}}
        assert bus.baudrate == 1_000_000
    finally:
        bus.disconnect(disable_torque=False)
        emulator.close()


def test_read_write_and_sync(chain):
    emulator, bus = chain
    bus.write("Goal_Position", "joint2", 1234, normalize=False)
    assert bus.read("Goal_Position", "joint2", normalize=False) == 1234
    assert emulator.servo(2).get("Goal_Position") == 1234
    emulator.servo(1).set_position(100)
    emulator.servo(3).set_position(4000)
    assert bus.sync_read("Present_Position", normalize=False) == {
        "joint1": 100,
        "joint2": 2048,
        "joint3": 4000,
    }
    bus.enable_torque()
    bus.sync_write("Goal_Position", {"joint1": 500, "joint3": 3500}, normalize=False)
    deadline = time.monotonic() + 2
    while emulator.servo(3).get("Goal_Position") != 3500 and time.monotonic() < deadline:
        time.sleep(0.005)  # sync write has no reply: wait for the emulator to apply it
    assert emulator.servo(1).get("Goal_Position") == 500 and emulator.servo(3).get("Goal_Position") == 3500
    while (
        bus.sync_read("Present_Position", normalize=False)["joint3"] != 3500 and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    assert bus.sync_read("Present_Position", ["joint1", "joint3"], normalize=False) == {
        "joint1": 500,
        "joint3": 3500,
    }
    bus.disable_torque()
    assert [s.get("Torque_Enable") for s in emulator.servos] == [0, 0, 0]


def test_signed_registers_round_trip(chain):
    emulator, bus = chain
    # Feetech: sign-magnitude (bit 11); Dynamixel: two's complement, and bytes FF FF FD need stuffing
    value = -1500 if bus.protocol == "feetech" else -131073
    bus.write("Homing_Offset", "joint1", value, normalize=False)
    assert bus.read("Homing_Offset", "joint1", normalize=False) == value
    assert emulator.servo(1).get("Homing_Offset", signed=True) == value


def test_retries_on_corrupted_replies(chain):
    emulator, bus = chain
    emulator.faults.corrupt_replies = 2
    assert bus.read("Present_Position", "joint1", normalize=False) == 2048  # third try succeeds
    assert emulator.faults.corrupt_replies == 0
    emulator.faults.corrupt_replies = 100
    with pytest.raises(CommunicationError, match=r"Present_Position.*'joint1'.*after 2 attempt"):
        bus.read("Present_Position", "joint1", num_retry=1)
    emulator.faults.corrupt_replies = 1  # a corrupted sync-read reply is retried, never decoded
    emulator.servo(2).set_position(777)
    assert bus.sync_read("Present_Position", normalize=False)["joint2"] == 777


def test_silent_motor_is_named(chain):
    emulator, bus = chain
    emulator.faults.silent_ids = {3}
    with pytest.raises(CommunicationError) as err:
        bus.sync_read("Present_Position", normalize=False, num_retry=1)
    assert (
        "Present_Position" in str(err.value)
        and "'joint3' (id 3)" in str(err.value)
        and emulator.port in str(err.value)
    )
    with pytest.raises(CommunicationError, match=rf"Goal_Position.*'joint3' \(id 3\) on {emulator.port}"):
        bus.write("Goal_Position", "joint3", 100, normalize=False, num_retry=0)


def test_latency_within_timeout(chain):
    emulator, bus = chain
    emulator.faults.latency_s = 0.005
    assert bus.read("Present_Position", "joint1", normalize=False) == 2048


def test_connect_names_missing_and_wrong_motors(make_chain, protocols):
    emulator, _ = make_chain("feetech", n=2)
    bus_cls, model = protocols["feetech"]
    bus = bus_cls(emulator.port, {"a": Motor(1, "sts3250"), "b": Motor(2, model), "c": Motor(9, model)})
    try:
        with pytest.raises(ConnectionError, match=r"'c' \(id 9\).*'a' \(id 1\) is sts3215, expected sts3250"):
            bus.connect()
        assert not bus.is_connected
    finally:
        emulator.close()


def test_unplugged_port_is_a_clear_error(chain):
    emulator, bus = chain
    emulator.close()
    with pytest.raises(PortLostError, match="unplugged"):
        bus.sync_read("Present_Position", normalize=False)


def test_bad_names_get_suggestions(chain):
    _, bus = chain
    with pytest.raises(KeyError, match="Did you mean 'joint1'"):
        bus.read("Present_Position", "joint_1")
    with pytest.raises(KeyError, match="Did you mean 'Present_Position'"):
        bus.read("Present_Positon", "joint1")
    with pytest.raises(RuntimeError, match="no calibration"):
        bus.read("Present_Position", "joint1")


@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_setup_motor_assigns_id_and_baudrate(protocol, protocols):
    bus_cls, model = protocols[protocol]
    from robokit.motors.emulator import ServoChainEmulator

    new_motor_baud = 57_600
    emulator = ServoChainEmulator(
        protocol, {1: model}, baudrate=new_motor_baud
    ).start()  # factory default id 1
    bus = bus_cls(emulator.port, {"gripper": Motor(6, model)}, baudrate=1_000_000)
    try:
        bus.connect(handshake=False)
        bus.setup_motor(
            "gripper",
            initial_baudrate=new_motor_baud if protocol == "dynamixel" else None,
            initial_id=1 if protocol == "dynamixel" else None,
        )
        servo = emulator.servos[0]
        assert servo.motor_id == 6 and servo.baudrate == 1_000_000
        assert bus.ping("gripper") == servo.spec.model_number
    finally:
        bus.disconnect(disable_torque=False)
        emulator.close()


def test_calibration_in_registers(chain):
    emulator, bus = chain
    emulator.servo(1).set_position(3000)
    offsets = bus.set_half_turn_homings(["joint1"])
    assert bus.read("Present_Position", "joint1", normalize=False) == 2047
    cal = {f"joint{i}": MotorCalibration(i, 0, offsets.get(f"joint{i}", 0), 1000, 3000) for i in (1, 2, 3)}
    bus.write_calibration(cal)
    assert bus.calibration_mismatches() == []
    emulator.servo(2)._set("Min_Position_Limit", 1100)
    assert bus.calibration_mismatches() == ["'joint2': range_min is 1100 in the motor, 1000 in the file"]
    # normalized: middle of [1000, 3000] -> 0, range_max -> 100
    emulator.servo(3).set_position(3000)
    values = bus.sync_read("Present_Position")
    assert values["joint2"] == pytest.approx((2048 - 1000) / 2000 * 200 - 100)
    assert values["joint3"] == pytest.approx(100.0)


def test_random_corruption_is_retried_never_decoded(chain):
    emulator, bus = chain
    emulator.faults.corrupt_probability = 0.1  # seeded: the same replies are corrupted on every run
    emulator.servo(2).set_position(1234)
    for _ in range(
        30
    ):  # a transaction (3 replies) fails ~27% of the time; retries bring every read back right
        assert bus.sync_read("Present_Position", normalize=False, num_retry=10)["joint2"] == 1234
    assert emulator.replies_corrupted > 3


# -- faults named as they are, and a dead bus given up quickly (issue 17) -----------------------------
@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_garbled_replies_are_not_reported_as_no_answer(make_chain, protocol):
    emulator, bus = make_chain(protocol)
    emulator.faults.corrupt_probability = 1.0  # every motor answers, every reply fails its checksum
    with pytest.raises(ConnectionError) as err:
        bus.connect()
    message = str(err.value)
    assert "corrupted replies from 'joint1' (id 1)" in message and "failed their checksum" in message
    assert "no answer" not in message and "check the data cable" in message
    assert not bus.is_connected
    emulator.faults.corrupt_probability = 0.0
    bus.connect()
    emulator.faults.corrupt_probability = 1.0
    with pytest.raises(CommunicationError, match=r"4 of 4 replies failed their checksum") as err:
        bus.sync_read("Present_Position", normalize=False)
    assert err.value.corrupted == 4 and err.value.unanswered == 0


@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_a_dead_bus_is_given_up_after_few_pings(make_chain, protocol):
    emulator, bus = make_chain(protocol, n=3)
    emulator.faults.silent_ids = {1, 2, 3}  # unpowered chain
    with pytest.raises(ConnectionError, match=r"no answer from 'joint1' \(id 1\), 'joint2' \(id 2\), 'joint3'"):
        bus.connect()
    # one ping per motor, then the retries of the first only: 3 + 3, where every motor's every retry made 12
    assert emulator.packets_received == 3 + bus.num_retry
    emulator.faults.silent_ids = {3}  # a live bus: the silent motor still gets every attempt
    before = len(emulator.last_instructions)
    with pytest.raises(ConnectionError, match=r"no answer from 'joint3' \(id 3\)\. Check the wiring"):
        bus.connect()
    assert [p.motor_id for p in emulator.last_instructions[before:]].count(3) == 1 + bus.num_retry


def test_a_non_finite_goal_is_refused_by_motor_name(chain):
    emulator, bus = chain
    packets = emulator.packets_received
    with pytest.raises(ValueError, match=r"Goal_Position=nan for motor 'joint2' is not a finite number"):
        bus.sync_write("Goal_Position", {"joint1": 100, "joint2": float("nan")}, normalize=False)
    with pytest.raises(ValueError, match=r"Goal_Position=inf for motor 'joint1'"):
        bus.write("Goal_Position", "joint1", float("inf"), normalize=False)
    assert emulator.packets_received == packets
