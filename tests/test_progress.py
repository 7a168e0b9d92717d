"""Progress output: a bar on a terminal, a few whole lines in a pipe or a log file (no carriage-return frames)."""

import io

import pytest

from robokit.progress import LineProgress, progress


def test_lines_at_each_tenth_and_at_the_end(monkeypatch):
    monkeypatch.delenv("ROBOKIT_PROGRESS", raising=False)
    out = io.StringIO()  # not a terminal
    bar = progress(total=1000, desc="train", unit="step", file=out)
    assert isinstance(bar, LineProgress)
    for i in range(1000):
        bar.update(1)
        if i % 100 == 0:
            bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 10, lines
    assert lines[0].startswith("train:  10% 100/1000 step [") and "loss=1.000" in lines[0]
    assert lines[-1].startswith("train: 100% 1000/1000 step [") and "left" not in lines[-1]


def test_iterating_a_list_and_a_stop_before_the_end(monkeypatch):
    monkeypatch.delenv("ROBOKIT_PROGRESS", raising=False)
    out = io.StringIO()
    assert list(progress(range(7), desc="convert", unit="episode", file=out)) == list(range(7))
    assert out.getvalue().splitlines()[-1].startswith("convert: 100% 7/7 episode")
    out = io.StringIO()
    with progress(total=50, desc="eval", file=out) as bar:
        bar.update(3)  # stopped early: the closing line says where
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[-1]]
    assert out.getvalue().startswith("eval:   6% 3/50 it")


def test_unknown_total_prints_by_time_only(monkeypatch):
    monkeypatch.delenv("ROBOKIT_PROGRESS", raising=False)
    out = io.StringIO()
    bar = progress(desc="actions", file=out, every_s=3600)
    for _ in range(500):
        bar.update(1)
    bar.close()
    assert out.getvalue().splitlines() == [out.getvalue().strip()] and out.getvalue().startswith("actions: 500 it [")


def test_the_environment_chooses(monkeypatch):
    out = io.StringIO()
    monkeypatch.setenv("ROBOKIT_PROGRESS", "off")
    bar = progress(total=10, file=out)
    bar.update(10)
    bar.close()
    assert out.getvalue() == ""
    monkeypatch.setenv("ROBOKIT_PROGRESS", "bar")  # a bar even into a file: tqdm's frames
    bar = progress(total=10, file=out)
    bar.update(10)
    bar.close()
    assert "\r" in out.getvalue()
    monkeypatch.setenv("ROBOKIT_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="ROBOKIT_PROGRESS='fancy'"):
        progress(total=1)
