import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("dynamixel_sdk")

from robokit.motors import Motor, MotorNormMode  # noqa: E402
from robokit.motors.dynamixel import DynamixelMotorsBus  # noqa: E402
from robokit.motors.emulator import ServoChainEmulator  # noqa: E402
from robokit.motors.feetech import FeetechMotorsBus  # noqa: E402

PROTOCOLS = {
    "feetech": (FeetechMotorsBus, "sts3215"),
    "dynamixel": (DynamixelMotorsBus, "xl330-m288"),
}


def _make_chain(protocol: str, n: int = 3):
    bus_cls, model = PROTOCOLS[protocol]
    emulator = ServoChainEmulator(protocol, {i: model for i in range(1, n + 1)}).start()
    motors = {f"joint{i}": Motor(i, model, MotorNormMode.RANGE_M100_100) for i in range(1, n + 1)}
    return emulator, bus_cls(emulator.port, motors, num_retry=3)


@pytest.fixture
def make_chain():
    """`make_chain(protocol, n)` -> (started emulator, unconnected bus named joint1..n)."""
    made = []

    def factory(protocol: str, n: int = 3):
        emulator, bus = _make_chain(protocol, n)
        made.append((emulator, bus))
        return emulator, bus

    yield factory
    for emulator, bus in made:
        bus.disconnect(disable_torque=False)
        emulator.close()


@pytest.fixture
def protocols():
    return PROTOCOLS


@pytest.fixture(params=list(PROTOCOLS))
def chain(request):
    emulator, bus = _make_chain(request.param)
    bus.connect()
    yield emulator, bus
    bus.disconnect(disable_torque=False)
    emulator.close()
