"""Recording keeps its loop on time by running the codecs' worker threads at a lower priority, while
the encoder's Python thread (which takes the GIL) and the recording thread keep theirs."""

import os
import sys
import threading
import time

import numpy as np
import pytest

from robokit.data.video_encode import StreamingVideoEncoder, video_frame_count

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _nice_by_thread() -> dict[int, int]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                out[int(tid)] = int(f.read().rsplit(")", 1)[1].split()[16])  # field 19: nice
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return out


def _encode_and_look(tmp_path, niceness):
    before = set(_nice_by_thread())
    enc = StreamingVideoEncoder(tmp_path / f"n{niceness}.mp4", 30, codec="av1", niceness=niceness)
    frames = np.zeros((8, 48, 64, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(8)[:, None, None] * 30
    for frame in frames:
        enc.add_frame(frame)
    deadline = time.monotonic() + 10
    while enc._encoded < 4 and time.monotonic() < deadline:  # the codec is open and encoding
        time.sleep(0.01)
    nice = _nice_by_thread()
    encoder_tid = enc._thread.native_id
    assert enc.close() == 8
    assert video_frame_count(tmp_path / f"n{niceness}.mp4") == 8  # nothing dropped
    started = {tid: n for tid, n in nice.items() if tid not in before and tid != encoder_tid}
    return nice[encoder_tid], started


def test_codec_worker_threads_run_at_lower_priority(tmp_path):
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if base > 9:
        pytest.skip(f"the test process already runs at nice {base}")
    encoder_nice, codec_threads = _encode_and_look(tmp_path, niceness=10)
    assert encoder_nice == base  # the GIL-taking thread is not demoted (priority inversion)
    demoted = [tid for tid, n in codec_threads.items() if n == base + 10]
    assert len(demoted) >= 4, f"SVT-AV1's worker threads should run at nice {base + 10}: {codec_threads}"
    # the only others: swscale's pixel-conversion threads (one per core), which PyAV starts from the
    # encoder thread at the first frame; they never take the GIL
    others = [n for n in codec_threads.values() if n != base + 10]
    assert set(others) <= {base} and len(others) <= (os.cpu_count() or 1)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller keeps its own

    encoder_nice, codec_threads = _encode_and_look(tmp_path, niceness=0)
    assert encoder_nice == base and codec_threads and set(codec_threads.values()) == {base}


def test_niceness_is_checked(tmp_path):
    with pytest.raises(ValueError, match="niceness must be an integer in 0..19, got 25"):
        StreamingVideoEncoder(tmp_path / "x.mp4", 30, niceness=25)
