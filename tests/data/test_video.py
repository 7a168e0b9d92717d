"""Video layer: real mp4 files through FFmpeg (PyAV / torchcodec), LeRobot-written fixtures."""

from __future__ import annotations

import json
import os
import shutil
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from robokit.data import video_decode
from robokit.data.video_decode import (
    FrameTimestampError,
    VideoDecodeError,
    clear_decoder_cache,
    decode_frames,
    default_backend,
    torchcodec_available,
)
from robokit.data.video_encode import (
    StreamingVideoEncoder,
    VideoEncodeError,
    append_video,
    video_duration_s,
    video_frame_count,
    video_info,
)

FIXTURES = Path(os.environ["ROBOKIT_LEROBOT_FIXTURES"])

HAS_TORCHCODEC = torchcodec_available()[0]
BACKENDS = [
    "pyav",
    pytest.param(
        "torchcodec",
        marks=pytest.mark.skipif(
            not HAS_TORCHCODEC, reason=f"torchcodec unavailable: {torchcodec_available()[1]}"
        ),
    ),
]


def make_frames(n: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: smooth colour fields plus a bright bar that moves 7 px per frame,
    so that every frame differs clearly from its neighbours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)  # soft edges: codec loss stays small
    phase = rng.uniform(0, 6.28, 3)
    for i in range(n):
        img = np.stack(
            [
                120 + 80 * np.sin(x / 13 + phase[0] + 0.4 * i),
                120 + 80 * np.cos(y / 11 + phase[1] - 0.3 * i),
                120 + 80 * np.sin((x + y) / 17 + phase[2] + 0.2 * i),
            ],
            -1,
        )
        bar = (7 * i) % (width - 12) + 6
        img += (110 * np.exp(-(((x - bar) / 3.0) ** 2)))[..., None]
        frames[i] = img.clip(0, 255).astype(np.uint8)
    return frames


def encode(path: Path, frames: np.ndarray, fps: int = 30, **kwargs) -> Path:
    enc = StreamingVideoEncoder(path, fps, **kwargs)
    for f in frames:
        enc.add_frame(f)
    assert enc.close() == len(frames)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def assert_frames_match(decoded: torch.Tensor, truth_nhwc: np.ndarray, min_psnr: float) -> None:
    """Each decoded frame is within codec loss of its own truth and closer to it than to a neighbour."""
    got = decoded.numpy().transpose(0, 2, 3, 1)
    assert got.shape == truth_nhwc.shape
    for i in range(len(got)):
        own = psnr(got[i], truth_nhwc[i])
        assert own >= min_psnr, f"frame {i}: PSNR {own:.1f} dB < {min_psnr}"
        for j in (i - 1, i + 1):
            if 0 <= j < len(got):
                assert own > psnr(got[i], truth_nhwc[j]), f"frame {i} looks more like frame {j}"


@pytest.fixture(autouse=True)
def _fresh_decoders():
    clear_decoder_cache()
    yield
    clear_decoder_cache()


# --------------------------------------------------------------------------- encoding


# At crf 30 on this content: av1 ~35-38 dB, hevc ~33-35, h264 ~31-32; a neighbouring frame ~18.
@pytest.mark.parametrize("codec,min_psnr", [("av1", 33), ("h264", 29), ("hevc", 31)])
def test_round_trip_each_codec(tmp_path, codec, min_psnr):
    frames = make_frames(12)
    path = encode(tmp_path / f"{codec}.mp4", frames, codec=codec)
    decoded = decode_frames(path, [i / 30 for i in range(12)], backend="pyav")
    assert decoded.dtype == torch.uint8 and decoded.shape == (12, 3, 64, 96)
    assert_frames_match(decoded, frames, min_psnr=min_psnr)
    info = video_info(path)
    assert info["video.codec"] == codec
    assert (info["video.height"], info["video.width"], info["video.fps"]) == (64, 96, 30)
    assert video_frame_count(path) == 12


@pytest.mark.parametrize("fps", [30, 25, 7])
def test_presentation_times_are_exact(tmp_path, fps):
    path = encode(tmp_path / "v.mp4", make_frames(9), fps=fps)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [f.pts * s.time_base for f in c.decode(s)]
    assert times == [Fraction(i, fps) for i in range(9)]
    assert video_duration_s(path) == pytest.approx(9 / fps, abs=1e-12)
    # Requests computed in float arithmetic land on the frames with the default tolerance.
    decode_frames(path, [i * (1 / fps) for i in range(9)])


@pytest.mark.lerobot_fixtures
def test_video_info_has_the_keys_lerobot_writes(tmp_path):
    info_json = json.loads((FIXTURES / "v30_video_2cam/meta/info.json").read_text())
    expected = info_json["features"]["observation.images.front"]["info"]
    path = encode(tmp_path / "v.mp4", make_frames(4, 48, 64))
    assert video_info(path) == expected
    lerobot_file = FIXTURES / "v30_video_2cam/videos/observation.images.front/chunk-000/file-000.mp4"
    assert video_info(lerobot_file) == expected


def test_unknown_codec_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"'vp9'.*'av1'.*'h264'.*'hevc'"):
        StreamingVideoEncoder(tmp_path / "v.mp4", 30, codec="vp9")


def test_bad_frames_are_rejected_with_the_shape(tmp_path):
    enc = StreamingVideoEncoder(tmp_path / "v.mp4", 30)
    with pytest.raises(ValueError, match=r"\(64, 96\) dtype uint8, expected \(H, W, 3\) uint8"):
        enc.add_frame(np.zeros((64, 96), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        enc.add_frame(np.zeros((64, 96, 3), np.float32))
    enc.add_frame(np.zeros((64, 96, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frame 1 has shape \(32, 96, 3\).*\(64, 96, 3\)"):
        enc.add_frame(np.zeros((32, 96, 3), np.uint8))
    assert enc.close() == 1  # the encoder stays usable after a rejected frame


def test_encoder_error_in_thread_names_the_file(tmp_path):
    # libx264 refuses odd sizes in 4:2:0; the failure happens in the thread and surfaces here.
    path = tmp_path / "odd.mp4"
    enc = StreamingVideoEncoder(path, 30, codec="h264")
    with pytest.raises(VideoEncodeError, match=str(path)):
        for f in make_frames(40, 47, 63):
            enc.add_frame(f)
        enc.close()
    assert not path.exists()
    assert not [p for p in tmp_path.iterdir()], "the partial file must be removed"


def test_file_appears_only_when_complete_and_abort_removes_it(tmp_path):
    path = tmp_path / "v.mp4"
    enc = StreamingVideoEncoder(path, 30)
    for f in make_frames(6):
        enc.add_frame(f)
    assert not path.exists()
    enc.abort()
    assert list(tmp_path.iterdir()) == []
    empty = StreamingVideoEncoder(tmp_path / "empty.mp4", 30)
    assert empty.close() == 0 and not (tmp_path / "empty.mp4").exists()


def test_append_three_parts(tmp_path):
    lengths = [5, 8, 3]
    parts_frames = [make_frames(n, seed=k) for k, n in enumerate(lengths)]
    parts = [encode(tmp_path / f"part{k}.mp4", f) for k, f in enumerate(parts_frames)]
    out = tmp_path / "videos" / "file-000.mp4"
    froms = []
    current = None
    for part in parts:
        froms.append(append_video(current, part, out))  # out == current from the 2nd part on
        current = out
    assert froms == [0.0, 5 / 30, 13 / 30]
    assert video_frame_count(out) == 16
    assert video_duration_s(out) == pytest.approx(16 / 30, abs=1e-12)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert [f.pts * s.time_base for f in c.decode(s)] == [Fraction(i, 30) for i in range(16)]
    for backend in ["pyav"] + (["torchcodec"] if HAS_TORCHCODEC else []):
        clear_decoder_cache()
        for from_ts, frames in zip(froms, parts_frames):
            got = decode_frames(out, [from_ts + i / 30 for i in range(len(frames))], backend=backend)
            assert_frames_match(got, frames, min_psnr=30)
    assert sorted(p.name for p in out.parent.iterdir()) == ["file-000.mp4"], "no temp file left behind"


def test_append_to_a_different_output_keeps_current(tmp_path):
    a = encode(tmp_path / "a.mp4", make_frames(4))
    b = encode(tmp_path / "b.mp4", make_frames(6, seed=1))
    before = a.read_bytes()
    assert append_video(a, b, tmp_path / "ab.mp4") == pytest.approx(4 / 30)
    assert a.read_bytes() == before
    assert video_frame_count(tmp_path / "ab.mp4") == 10


def test_append_rejects_different_settings(tmp_path):
    a = encode(tmp_path / "a.mp4", make_frames(4))
    b = encode(tmp_path / "b.mp4", make_frames(4, 32, 48))
    with pytest.raises(ValueError, match="width"):
        append_video(a, b, tmp_path / "ab.mp4")
    c = encode(tmp_path / "c.mp4", make_frames(4), codec="h264")
    with pytest.raises(ValueError, match="codec"):
        append_video(a, c, tmp_path / "ac.mp4")
    assert not (tmp_path / "ab.mp4").exists() and not (tmp_path / "ac.mp4").exists()


# --------------------------------------------------------------------------- decoding


def _lerobot_episodes():
    table = pq.read_table(FIXTURES / "v30_video_2cam/meta/episodes/chunk-000/file-000.parquet")
    return table.to_pylist()


@pytest.mark.lerobot_fixtures
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("camera", ["front", "wrist"])
def test_lerobot_v30_fixture_frames(backend, camera):
    truth = np.load(FIXTURES / "groundtruth_video.npz")
    key = f"observation.images.{camera}"
    path = FIXTURES / f"v30_video_2cam/videos/{key}/chunk-000/file-000.mp4"
    episodes = _lerobot_episodes()
    assert len(episodes) == 5
    for ep in episodes:
        n, start = ep["length"], ep["dataset_from_index"]
        from_ts = ep[f"videos/{key}/from_timestamp"]
        got = decode_frames(path, [from_ts + i / 30 for i in range(n)], backend=backend)
        want = truth[key][start : start + n].transpose(0, 2, 3, 1)
        assert_frames_match(got, want, min_psnr=30)


@pytest.mark.lerobot_fixtures
@pytest.mark.parametrize("backend", BACKENDS)
def test_lerobot_v21_fixture_frames(backend):
    truth = np.load(FIXTURES / "groundtruth_video.npz")
    start = 0
    for ep, n in enumerate(truth["episode_lengths"][:3]):
        for camera in ("front", "wrist"):
            key = f"observation.images.{camera}"
            path = FIXTURES / f"v21_legacy/videos/chunk-000/{key}/episode_{ep:06d}.mp4"
            got = decode_frames(path, [i / 30 for i in range(n)], backend=backend)
            assert_frames_match(got, truth[key][start : start + n].transpose(0, 2, 3, 1), min_psnr=30)
        start += n


@pytest.mark.parametrize("backend", BACKENDS)
def test_timestamp_between_frames_raises(tmp_path, backend):
    path = encode(tmp_path / "v.mp4", make_frames(10))
    with pytest.raises(FrameTimestampError) as err:
        decode_frames(path, [0.0, 3.5 / 30], backend=backend)
    e = err.value
    assert isinstance(e, ValueError)
    assert e.path == str(path) and e.requested_s == pytest.approx(3.5 / 30) and e.tolerance_s == 1e-4
    assert e.closest_s == pytest.approx(3 / 30) or e.closest_s == pytest.approx(4 / 30)
    msg = str(e)
    assert str(path) in msg and "0.116667" in msg and "tolerance_s=0.0001" in msg
    # Just outside the tolerance is refused; just inside is the frame.
    with pytest.raises(FrameTimestampError):
        decode_frames(path, [4 / 30 + 2e-4], backend=backend)
    ok = decode_frames(path, [4 / 30 + 5e-5], backend=backend)
    assert torch.equal(ok, decode_frames(path, [4 / 30], backend=backend))
    for outside in (10 / 30, -1 / 30):
        with pytest.raises(FrameTimestampError, match="closest frame is at"):
            decode_frames(path, [outside], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_and_missing_files(tmp_path, backend):
    good = encode(tmp_path / "good.mp4", make_frames(20))
    data = good.read_bytes()
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="truncated.mp4"):
        decode_frames(bad, [0.0], backend=backend)
    with pytest.raises(VideoDecodeError, match="missing.mp4") as err:
        decode_frames(tmp_path / "missing.mp4", [0.0], backend=backend)
    assert isinstance(err.value, FileNotFoundError)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        decode_frames(garbage, [0.0], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_order_duplicates_and_random_access(tmp_path, backend):
    frames = make_frames(40)
    path = encode(tmp_path / "v.mp4", frames)
    reference = decode_frames(path, [i / 30 for i in range(40)], backend="pyav")
    assert_frames_match(reference, frames, min_psnr=30)
    clear_decoder_cache()
    rng = np.random.default_rng(1)
    for _ in range(40):  # the decoder's position carries over between calls: forward, back, repeat
        idx = rng.integers(0, 40, size=rng.integers(1, 6))
        got = decode_frames(path, [i / 30 for i in idx], backend=backend)
        assert torch.equal(got, reference[torch.from_numpy(idx)]), idx
    assert decode_frames(path, [], backend=backend).shape == (0, 3, 64, 96)


def test_pyav_decodes_forward_and_each_frame_once(tmp_path, monkeypatch):
    path = encode(tmp_path / "v.mp4", make_frames(30))
    seeks, pulled = [], []
    original_seek = video_decode._PyAVReader._seek

    def counting_seek(self, t):
        seeks.append(t)
        original_seek(self, t)
        frames = self._frames

        def counted():
            for frame in frames:
                pulled.append(frame.pts)
                yield frame

        self._frames = counted()

    monkeypatch.setattr(video_decode._PyAVReader, "_seek", counting_seek)
    # Sliding windows as a sequential sampler asks for them: one seek in all, every frame decoded once.
    for i in range(1, 30):
        decode_frames(path, [(i - 1) / 30, i / 30], backend="pyav")
    assert len(seeks) == 1
    assert len(pulled) == len(set(pulled)) == 30
    # A jump far ahead (past several keyframes) seeks instead of decoding everything in between.
    seeks.clear(), pulled.clear()
    decode_frames(path, [0.0], backend="pyav")
    decode_frames(path, [20 / 30, 21 / 30, 21 / 30], backend="pyav")
    assert len(seeks) == 2 and len(pulled) <= 4  # frame 0, then keyframe 20 and 21


@pytest.mark.skipif(not HAS_TORCHCODEC, reason="torchcodec unavailable")
def test_backends_return_identical_frames(tmp_path):
    for codec in ("av1", "h264"):
        path = encode(tmp_path / f"{codec}.mp4", make_frames(15), codec=codec)
        times = [i / 30 for i in range(15)]
        pyav = decode_frames(path, times, backend="pyav")
        assert torch.equal(pyav, decode_frames(path, times, backend="torchcodec"))


def test_backend_choice(monkeypatch):
    monkeypatch.delenv(video_decode.BACKEND_ENV, raising=False)
    assert default_backend() == ("torchcodec" if HAS_TORCHCODEC else "pyav")
    monkeypatch.setenv(video_decode.BACKEND_ENV, "pyav")
    assert default_backend() == "pyav"
    monkeypatch.setenv(video_decode.BACKEND_ENV, "opencv")
    with pytest.raises(ValueError, match=r"ROBOKIT_VIDEO_BACKEND.*'opencv'.*torchcodec.*pyav"):
        default_backend()


def test_replaced_file_is_reopened(tmp_path):
    out = tmp_path / "file.mp4"
    append_video(None, encode(tmp_path / "p0.mp4", make_frames(4)), out)
    decode_frames(out, [3 / 30])  # cached decoder on the 4-frame file
    from_ts = append_video(out, encode(tmp_path / "p1.mp4", make_frames(4, seed=3)), out)
    assert decode_frames(out, [from_ts + 3 / 30]).shape == (1, 3, 64, 96)


def test_threads_share_the_cache_safely(tmp_path, monkeypatch):
    # Capacity 1 with two files: threads keep evicting (closing) readers another thread may hold.
    monkeypatch.setattr(video_decode._cache, "capacity", 1)
    paths = [encode(tmp_path / f"v{k}.mp4", make_frames(16, seed=k)) for k in range(2)]
    reference = [decode_frames(p, [i / 30 for i in range(16)], backend="pyav") for p in paths]
    errors = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(25):
                k = int(rng.integers(2))
                idx = rng.integers(0, 16, size=2)
                got = decode_frames(paths[k], [i / 30 for i in idx], backend="pyav")
                assert torch.equal(got, reference[k][torch.from_numpy(idx)])
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


class _FrameDataset(torch.utils.data.Dataset):
    def __init__(self, path: Path, n: int, backend: str):
        self.path, self.n, self.backend = path, n, backend

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return decode_frames(self.path, [i / 30], backend=self.backend)[0], os.getpid()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dataloader_with_two_forked_workers(tmp_path, backend):
    path = encode(tmp_path / "v.mp4", make_frames(24))
    expected = decode_frames(path, [i / 30 for i in range(24)], backend=backend)  # parent opens it first
    loader = torch.utils.data.DataLoader(
        _FrameDataset(path, 24, backend), batch_size=4, num_workers=2, multiprocessing_context="fork"
    )
    frames, pids = zip(*loader)
    assert torch.equal(torch.cat(frames), expected)
    worker_pids = set(torch.cat(pids).tolist())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    # The parent's own decoder still works after the children used theirs.
    assert torch.equal(decode_frames(path, [5 / 30], backend=backend)[0], expected[5])


def test_fork_drops_inherited_decoders(tmp_path):
    path = encode(tmp_path / "v.mp4", make_frames(6))
    decode_frames(path, [0.0], backend="pyav")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's handles are gone before any use
        ok = len(video_decode._cache.entries) == 0
        ok = ok and decode_frames(path, [2 / 30], backend="pyav").shape == (1, 3, 64, 96)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert len(video_decode._cache.entries) == 1


@pytest.mark.lerobot_fixtures
def test_copied_fixture_tree_is_not_needed(tmp_path):
    # decode_frames accepts str and Path and does not care where the file lives.
    src = FIXTURES / "v30_video_2cam/videos/observation.images.wrist/chunk-000/file-000.mp4"
    dst = tmp_path / "copy.mp4"
    shutil.copy(src, dst)
    assert torch.equal(decode_frames(str(dst), [0.5]), decode_frames(src, [0.5]))
