"""`robokit find-port` and `find-cameras` on a machine without devices: they list, never crash."""

from robokit.cli import main


def test_find_port_lists(capsys):
    assert main(["find-port", "--no-interactive"]) == 0
    assert "Serial ports:" in capsys.readouterr().out


def test_find_cameras_lists(capsys):
    assert main(["find-cameras", "--max-index", "1"]) == 0
    out = capsys.readouterr().out
    assert "No cameras found" in out or "index_or_path=" in out


def test_find_cameras_keeps_opencvs_probe_warnings_quiet(capfd):
    """Every candidate that is not a camera made OpenCV print "can't open camera by index" (issue 17: noise)."""
    assert main(["find-cameras", "--max-index", "2"]) == 0
    assert "WARN" not in capfd.readouterr().err
