"""benchmarks/bench_smolvla.py on the CPU: the side-by-side table's form, on the tiny offline backbone.

The figures are not tested (benchmarks are not timed tests): that the script runs every (cameras, dtype)
case, prints the host, and gives each row a median / p90 in ms and the CPU seconds per chunk.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_smolvla.py"


def test_cpu_table_has_a_row_per_camera_count_and_dtype_with_the_host():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--no-lerobot", "--threads", "1", "--rounds", "1", "--repeats", "2",
         "--cams", "1", "2"],
        capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"^host: .+; \d+ cores; load ", out.stdout, re.MULTILINE), out.stdout
    rows = re.findall(r"^\| (\d) \| (fp32|bf16) \| (\d+) / (\d+) \| n/a \| n/a \| ([\d.]+) / n/a \|$", out.stdout, re.MULTILINE)
    assert [(cams, dtype) for cams, dtype, *_ in rows] == [("1", "fp32"), ("1", "bf16"), ("2", "fp32"), ("2", "bf16")]
    for _, _, median, p90, cpu in rows:
        assert 0 < int(median) <= int(p90), rows
        assert float(cpu) >= 0
