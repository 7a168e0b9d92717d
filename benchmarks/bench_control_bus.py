"""Servo bus throughput on the emulator: sync-read + sync-write round trips per second, 6 motors, 1 Mbaud.

The emulator runs in its own process (`robokit virtual-arm`), as a USB adapter would be another
device; the pty does not throttle to the baud rate, so this measures the host-side cost (SDK,
robokit, emulator). On a real 1 Mbaud wire one 6-motor sync read + write moves ~100 bytes (~1 ms).

    python benchmarks/bench_control_bus.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np


def bench(bus, seconds: float) -> dict:
    goals = {name: 2048 for name in bus.motors}
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        bus.sync_read("Present_Position", normalize=False)
        bus.sync_write("Goal_Position", goals, normalize=False)
        latencies.append(time.perf_counter() - t0)
    lat = np.asarray(latencies) * 1e3
    return {
        "round_trips_per_s": len(lat) / lat.sum() * 1e3,
        "p50_ms": float(np.median(lat)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    from robokit.motors import Motor
    from robokit.motors.dynamixel import DynamixelMotorsBus
    from robokit.motors.feetech import FeetechMotorsBus

    for arm, bus_cls, model in (
        ("so101", FeetechMotorsBus, "sts3215"),
        ("koch_leader", DynamixelMotorsBus, "xl330-m077"),
    ):
        proc = subprocess.Popen(
            [sys.executable, "-m", "robokit.cli", "virtual-arm", arm], stdout=subprocess.PIPE, text=True
        )
        try:
            port = proc.stdout.readline().split()[1]
            bus = bus_cls(port, {f"m{i}": Motor(i, model) for i in range(1, 7)})
            bus.connect()
            r = bench(bus, args.seconds)
            bus.disconnect(disable_torque=False)
        finally:
            proc.terminate()
            proc.wait()
        print(
            f"{bus_cls.protocol:9s} 6 motors @1Mbaud: {r['round_trips_per_s']:7.0f} sync-read+sync-write round trips/s "
            f"(p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms)"
        )


if __name__ == "__main__":
    main()
