"""Control tables of the supported servo models (addresses and sizes from the vendors' manuals).

A register is `name: (address, size in bytes)`. Each table also lists the model numbers that the
motors answer to ping with, the baud-rate codes of the `Baud_Rate` register, and the registers
whose values are sign-magnitude encoded (Feetech) rather than two's complement (Dynamixel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# EPROM registers at the same addresses in Feetech's STS/SMS and SCS series.
_FEETECH_COMMON_EPROM: dict[str, tuple[int, int]] = {
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "Unloading_Condition": (19, 1),
    "LED_Alarm_Condition": (20, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Minimum_Startup_Force": (24, 2),
    "CW_Dead_Zone": (26, 1),
    "CCW_Dead_Zone": (27, 1),
}

# -- Feetech STS / SMS series (STS3215, STS3250, SM8512BL) ----------------------------------------
# EPROM: the common registers, then the series' own.
FEETECH_STS_TABLE: dict[str, tuple[int, int]] = {
    **_FEETECH_COMMON_EPROM,
    "Protection_Current": (28, 2),
    "Angular_Resolution": (30, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Protective_Torque": (34, 1),
    "Protection_Time": (35, 1),
    "Overload_Torque": (36, 1),
    "Velocity_closed_loop_P_proportional_coefficient": (37, 1),
    "Over_Current_Protection_Time": (38, 1),
    "Velocity_closed_loop_I_integral_coefficient": (39, 1),
    # SRAM
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    "Maximum_Acceleration": (85, 2),
}
# -- Feetech SCS series (SCS0009: the Hope-JR hand's finger servos), Feetech's "protocol 1" ----------
# Same packet frame as the STS series, but 2-byte registers travel big-endian, the encoder has 1024
# steps, and there is no Homing_Offset or Operating_Mode register (addresses: Feetech's SCSCL manual).
FEETECH_SCS_TABLE: dict[str, tuple[int, int]] = {
    **_FEETECH_COMMON_EPROM,
    "Protective_Torque": (37, 1),
    "Protection_Time": (38, 1),
    # SRAM
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Running_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Lock": (48, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
}

FEETECH_SIGN_BITS = {"Homing_Offset": 11, "Goal_Velocity": 15, "Present_Velocity": 15}
FEETECH_BAUDRATES = {
    1_000_000: 0,
    500_000: 1,
    250_000: 2,
    128_000: 3,
    115_200: 4,
    57_600: 5,
    38_400: 6,
    19_200: 7,
}
FEETECH_OPERATING_MODES = {"position": 0, "velocity": 1, "pwm": 2, "step": 3}

# -- Dynamixel X series, protocol 2.0 (XL330, XL430, XC430, XM430, XM540) -------------------------
DYNAMIXEL_X_TABLE: dict[str, tuple[int, int]] = {
    # EEPROM
    "Model_Number": (0, 2),
    "Model_Information": (2, 4),
    "Firmware_Version": (6, 1),
    "ID": (7, 1),
    "Baud_Rate": (8, 1),
    "Return_Delay_Time": (9, 1),
    "Drive_Mode": (10, 1),
    "Operating_Mode": (11, 1),
    "Secondary_ID": (12, 1),
    "Protocol_Type": (13, 1),
    "Homing_Offset": (20, 4),
    "Moving_Threshold": (24, 4),
    "Temperature_Limit": (31, 1),
    "Max_Voltage_Limit": (32, 2),
    "Min_Voltage_Limit": (34, 2),
    "PWM_Limit": (36, 2),
    "Current_Limit": (38, 2),
    "Velocity_Limit": (44, 4),
    "Max_Position_Limit": (48, 4),
    "Min_Position_Limit": (52, 4),
    "Shutdown": (63, 1),
    # RAM
    "Torque_Enable": (64, 1),
    "LED": (65, 1),
    "Status_Return_Level": (68, 1),
    "Registered_Instruction": (69, 1),
    "Hardware_Error_Status": (70, 1),
    "Velocity_I_Gain": (76, 2),
    "Velocity_P_Gain": (78, 2),
    "Position_D_Gain": (80, 2),
    "Position_I_Gain": (82, 2),
    "Position_P_Gain": (84, 2),
    "Feedforward_2nd_Gain": (88, 2),
    "Feedforward_1st_Gain": (90, 2),
    "Bus_Watchdog": (98, 1),
    "Goal_PWM": (100, 2),
    "Goal_Current": (102, 2),
    "Goal_Velocity": (104, 4),
    "Profile_Acceleration": (108, 4),
    "Profile_Velocity": (112, 4),
    "Goal_Position": (116, 4),
    "Realtime_Tick": (120, 2),
    "Moving": (122, 1),
    "Moving_Status": (123, 1),
    "Present_PWM": (124, 2),
    "Present_Current": (126, 2),
    "Present_Velocity": (128, 4),
    "Present_Position": (132, 4),
    "Velocity_Trajectory": (136, 4),
    "Position_Trajectory": (140, 4),
    "Present_Input_Voltage": (144, 2),
    "Present_Temperature": (146, 1),
}
DYNAMIXEL_BAUDRATES = {
    9_600: 0,
    57_600: 1,
    115_200: 2,
    1_000_000: 3,
    2_000_000: 4,
    3_000_000: 5,
    4_000_000: 6,
}
DYNAMIXEL_OPERATING_MODES = {
    "current": 0,
    "velocity": 1,
    "position": 3,
    "extended_position": 4,
    "current_position": 5,
    "pwm": 16,
}


@dataclass(frozen=True)
class ModelSpec:
    """One servo model: its control table and facts the bus and emulator need."""

    model: str
    protocol: str  # "feetech" or "dynamixel"
    model_number: int
    table: dict[str, tuple[int, int]] = field(repr=False)
    resolution: int = 4096
    """Encoder steps per turn."""
    firmware: tuple[int, int] = (3, 10)
    byte_order: str = "little"
    """Order of the bytes of multi-byte registers on the wire ("big" for Feetech's SCS series)."""


MODELS: dict[str, ModelSpec] = {
    "sts3215": ModelSpec("sts3215", "feetech", 777, FEETECH_STS_TABLE),
    "sts3250": ModelSpec("sts3250", "feetech", 2825, FEETECH_STS_TABLE),
    "sm8512bl": ModelSpec("sm8512bl", "feetech", 11272, FEETECH_STS_TABLE),
    "scs0009": ModelSpec("scs0009", "feetech", 1284, FEETECH_SCS_TABLE, resolution=1024, byte_order="big"),
    "xl330-m077": ModelSpec("xl330-m077", "dynamixel", 1190, DYNAMIXEL_X_TABLE, firmware=(46, 0)),
    "xl330-m288": ModelSpec("xl330-m288", "dynamixel", 1200, DYNAMIXEL_X_TABLE, firmware=(46, 0)),
    "xl430-w250": ModelSpec("xl430-w250", "dynamixel", 1060, DYNAMIXEL_X_TABLE, firmware=(46, 0)),
    "xc430-w150": ModelSpec("xc430-w150", "dynamixel", 1070, DYNAMIXEL_X_TABLE, firmware=(46, 0)),
    "xm430-w350": ModelSpec("xm430-w350", "dynamixel", 1020, DYNAMIXEL_X_TABLE, firmware=(46, 0)),
    "xm540-w270": ModelSpec("xm540-w270", "dynamixel", 1120, DYNAMIXEL_X_TABLE, firmware=(46, 0)),
}
MODEL_BY_NUMBER = {(spec.protocol, spec.model_number): spec for spec in MODELS.values()}


def model_spec(model: str) -> ModelSpec:
    """The spec of `model`, with a suggestion for a mistyped name."""
    if model not in MODELS:
        import difflib

        close = difflib.get_close_matches(model, MODELS, n=2)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown servo model {model!r}; known: {sorted(MODELS)}.{hint}")
    return MODELS[model]


def baudrate_table(protocol: str) -> dict[int, int]:
    return FEETECH_BAUDRATES if protocol == "feetech" else DYNAMIXEL_BAUDRATES


def encode_value(protocol: str, register: str, value: int, size: int) -> int:
    """Signed user value -> unsigned register value (sign-magnitude for Feetech, two's complement for Dynamixel)."""
    if protocol == "feetech":
        bit = FEETECH_SIGN_BITS.get(register)
        if bit is not None and value < 0:
            return (-value & ((1 << bit) - 1)) | (1 << bit)
        return value & ((1 << (8 * size)) - 1)
    return value & ((1 << (8 * size)) - 1)


def decode_value(protocol: str, register: str, raw: int, size: int) -> int:
    """Unsigned register value -> signed user value."""
    if protocol == "feetech":
        bit = FEETECH_SIGN_BITS.get(register)
        if bit is not None and raw & (1 << bit):
            return -(raw & ((1 << bit) - 1))
        return raw
    signed = register.startswith(("Present_", "Goal_", "Homing_Offset")) and size > 1
    if signed and raw & (1 << (8 * size - 1)):
        return raw - (1 << (8 * size))
    return raw
