"""The benchmark scripts' own logic: units, the recording workload, the side-by-side summary, the host line.

The figures themselves are not tested (benchmarks are not timed tests); what is tested is that the
scripts measure the workload they say and print what they measure in a stable form.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import side_by_side  # noqa: E402


def test_policy_latency_prints_every_case_in_ms(capsys):
    bench = pytest.importorskip("bench_policy_latency")
    args = SimpleNamespace(peak=100.0, device="cpu")
    bench.report(args, "slow case", [2.5, 3.0, 3.5], None)  # seconds: once printed as "3.00 s"
    bench.report(args, "fast case", [0.010, 0.012, 0.011], None)
    lines = capsys.readouterr().out.splitlines()
    shown = [line for line in lines if not line.startswith(side_by_side.RESULT_PREFIX)]
    assert re.search(r"median\s+3000\.0 ms p90\s+3500\.0 ms", shown[0]), shown[0]
    assert re.search(r"median\s+11\.0 ms p90\s+12\.0 ms", shown[1]), shown[1]
    assert not any(re.search(r"\d s\b", line) for line in shown)
    results = [json.loads(line[len(side_by_side.RESULT_PREFIX):]) for line in lines if line not in shown]
    assert [r["median"] for r in results] == [3.0, 0.011]


def test_recording_benchmark_uses_as_many_distinct_frames_as_the_episode_has():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_recording.py"), "--no-lerobot", "--skip-paced", "--episodes", "1",
         "--frames", "40", "--rounds", "1", "--codec", "h264"],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "40 distinct frames" in out.stdout, out.stdout  # was 30 distinct frames looped, whatever --frames said
    assert out.stdout.startswith("host: ")


def test_summary_reports_medians_and_the_per_round_ratio():
    ours = [{"t": 1.0}, {"t": 2.0}, {"t": 1.5}]
    theirs = [{"t": 2.0}, {"t": 2.0}, None]  # a failed LeRobot round is left out of the ratios
    line = side_by_side.summary("case", "t", ours, theirs, "ms", scale=1e3)
    assert "robokit     1500 (1000-2000) ms" in line
    assert "LeRobot     2000 (2000-2000) ms" in line
    assert "time ratio robokit/LeRobot 0.75 (robokit faster; rounds 0.50, 1.00)" in line
    slower = side_by_side.summary("case", "fps", [{"fps": 30.0}], [{"fps": 40.0}], "frames/s", higher_is_better=True)
    assert "robokit/LeRobot 0.75x (robokit SLOWER" in slower


def test_host_line_names_the_cpu_its_extensions_and_the_date():
    line = side_by_side.host_line()
    model = next((raw.split(":", 1)[1].strip() for raw in Path("/proc/cpuinfo").read_text().splitlines()
                  if raw.startswith("model name")), None) if Path("/proc/cpuinfo").exists() else None
    if model:
        assert model in line
    assert re.search(r"\d+ cores; load [\d.]+, [\d.]+, [\d.]+; \d{4}-\d\d-\d\d \d\d:\d\d UTC$", line), line


def test_a_missing_lerobot_venv_is_named_with_the_command_that_builds_it(tmp_path):
    with pytest.raises(SystemExit) as exc:
        side_by_side.lerobot_python(str(tmp_path / "no-venv/bin/python"))
    assert "no-venv/bin/python does not exist" in str(exc.value)
    assert "lerobot-reference/make-venv" in str(exc.value)


def test_without_the_default_lerobot_venv_the_benchmarks_run_robokit_only_and_say_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(side_by_side, "DEFAULT_LEROBOT_PYTHON", str(tmp_path / "venv-lerobot/bin/python"))
    assert side_by_side.lerobot_python(None) is None
    assert "no LeRobot side" in capsys.readouterr().out
    interpreter = tmp_path / "python"
    interpreter.write_text("")
    assert side_by_side.lerobot_python(str(interpreter)) == str(interpreter)
    assert side_by_side.lerobot_python(str(interpreter), wanted=False) is None
