"""Video encode / decode throughput at 480x640 (the recording benchmark's camera size).

    .venv/bin/python benchmarks/bench_video.py            # everything (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_video.py --only encode --frames 90
    .venv/bin/python benchmarks/bench_video.py --only decode

Encode: images/s of one encoder fed as fast as it takes frames (synchronous, this thread), per
codec / preset, on smooth synthetic images and on a textured image moving across the view; then
two StreamingVideoEncoders in background threads (two cameras), reported as dataset frames/s
(one frame = one image per camera). Each figure is the best of --repeats runs: the machine is
shared, the best run is the least disturbed one. "cpu ms/img" is the process CPU time (all threads)
per image, least of the runs: it varies less with other load than wall time, and 2000 / it is the
images/s that two idle cores could reach.

Decode: frames/s through decode_frames per backend: sequential (one frame per call, in order,
as a DataLoader without shuffling asks), a whole episode in one call, and random access (one
random frame per call, as a shuffled DataLoader asks; with its cpu ms/frame).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

H, W, FPS = 480, 640, 30


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def smooth_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Slowly moving colour gradients: the recording benchmark's synthetic camera."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6.28, 3)
    frames = []
    for i in range(n):
        r = 127 + 120 * np.sin((x + 3 * i) / 40 + phase[0])
        g = 127 + 120 * np.cos((y + 2 * i) / 50 + phase[1])
        b = 127 + 120 * np.sin((x + y + i) / 70 + phase[2])
        frames.append(np.stack([r, g, b], -1).astype(np.uint8))
    return frames


def textured_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """A multi-scale noise texture (detail at 2, 8 and 32 px) panning 2 px/frame: hard for a codec."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    big = (3, H + 2 * n + 64, W + 2 * n + 64)
    tex = torch.zeros(big)
    for scale in (2, 8, 32):
        coarse = torch.rand((1, 3, big[1] // scale + 1, big[2] // scale + 1), generator=gen)
        tex += F.interpolate(coarse, scale_factor=scale, mode="bilinear")[0, :, : big[1], : big[2]] / 3
    tex = (tex * 255).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return [np.ascontiguousarray(tex[i : i + H, 2 * i : 2 * i + W]) for i in range(n)]


def encode_sync(frames, path: Path, codec: str, preset) -> tuple[float, float]:
    """(images/s, cpu ms/img) of one synchronous encoder (conversion + encoding + muxing), robokit's options
    (for av1 that includes lp=1: one thread, as each camera's encoder runs)."""
    import av

    from robokit.data.video_encode import ENCODERS, _encoder_options, _quiet_encoder_logs

    _quiet_encoder_logs()
    container = av.open(str(path), "w", format="mp4")
    options = _encoder_options(codec, 2, 30, preset, None)
    stream = container.add_stream(ENCODERS[codec], rate=FPS, options=options)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.codec_context.time_base = Fraction(1, FPS)
    t0, c0 = time.perf_counter(), _cpu_s()
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(f, format="rgb24")
        vf.pts = i
        for p in stream.encode(vf):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)
    container.close()
    return len(frames) / (time.perf_counter() - t0), (_cpu_s() - c0) * 1e3 / len(frames)


def encode_two_cameras(frames, folder: Path, codec: str, preset, options=None) -> tuple[float, float, float]:
    """Dataset frames/s with two StreamingVideoEncoders (one per camera), cpu ms/img, and the main
    thread's worst add_frame call in ms (frames are fed as fast as they go: this is back-pressure)."""
    from robokit.data.video_encode import StreamingVideoEncoder

    encs = [
        StreamingVideoEncoder(folder / f"cam{k}.mp4", FPS, codec=codec, preset=preset, options=options)
        for k in range(2)
    ]
    worst = 0.0
    t0, c0 = time.perf_counter(), _cpu_s()
    for f in frames:
        for e in encs:
            a = time.perf_counter()
            e.add_frame(f)
            worst = max(worst, time.perf_counter() - a)
    for e in encs:
        e.close()
    cpu_ms = (_cpu_s() - c0) * 1e3 / (2 * len(frames))
    return len(frames) / (time.perf_counter() - t0), cpu_ms, worst * 1e3


def bench_encode(args, tmp: Path) -> None:
    contents = {"smooth": smooth_frames(args.frames), "textured": textured_frames(args.frames)}
    # SVT-AV1 4.x runs preset 12 (LeRobot's) as 11.
    cases = [("av1", p) for p in (8, 10, 11, 12)] + [("h264", p) for p in ("ultrafast", "veryfast", "medium")]
    cases += [("hevc", p) for p in ("ultrafast", "veryfast")]
    print(f"\n== encode {W}x{H}, crf 30, GOP 2, yuv420p, {args.frames} frames; best of {args.repeats} ==")
    print(f"{'codec':6} {'preset':10} {'content':9} {'images/s':>9} {'cpu ms/img':>11} {'KB/frame':>9}")
    for codec, preset in cases:
        for name, frames in contents.items():
            path = tmp / f"enc_{codec}_{preset}_{name}.mp4"
            runs = [encode_sync(frames, path, codec, preset) for _ in range(args.repeats)]
            best, cpu = max(r[0] for r in runs), min(r[1] for r in runs)
            kb = path.stat().st_size / 1024 / len(frames)
            print(f"{codec:6} {preset!s:10} {name:9} {best:9.1f} {cpu:11.2f} {kb:9.1f}", flush=True)
    print("\n== two cameras, StreamingVideoEncoder in background threads (default preset) ==")
    header = f"{'codec':12} {'content':9} {'dataset frames/s':>17} {'images/s':>9} {'cpu ms/img':>11}"
    print(header + f" {'worst add_frame ms':>19}")
    variants = [("av1", None, "av1"), ("av1", {"svtav1-params": "lp=0"}, "av1 lp=auto")]
    variants.append(("h264", None, "h264"))
    for codec, options, label in variants:
        for name, frames in contents.items():
            runs = [encode_two_cameras(frames, tmp, codec, None, options) for _ in range(args.repeats)]
            fps, _, worst = max(runs)
            cpu = min(r[1] for r in runs)
            print(f"{label:12} {name:9} {fps:17.1f} {2 * fps:9.1f} {cpu:11.2f} {worst:19.1f}", flush=True)


def bench_decode(args, tmp: Path) -> None:
    from robokit.data.video_decode import torchcodec_available
    from robokit.data.video_encode import StreamingVideoEncoder

    backends = ["pyav"] + (["torchcodec"] if torchcodec_available()[0] else [])
    n = args.frames
    print(f"\n== decode {W}x{H} av1 (default encoder settings), {n} frames; frames/s, best of {args.repeats}")
    print(f"{'backend':11} {'content':9} {'sequential':>11} {'one call':>9} {'random':>9} {'cpu ms/frame':>13}")
    for name, frames in {"smooth": smooth_frames(n), "textured": textured_frames(n)}.items():
        path = tmp / f"dec_{name}.mp4"
        with StreamingVideoEncoder(path, FPS) as enc:
            for f in frames:
                enc.add_frame(f)
        times = [i / FPS for i in range(n)]
        rnd = random.Random(0)
        random_times = [rnd.choice(times) for _ in range(min(n, 150))]
        for backend in backends:
            seq = max(_decode_rate(path, times, backend, True)[0] for _ in range(args.repeats))
            one = max(_decode_rate(path, times, backend, False)[0] for _ in range(args.repeats))
            runs = [_decode_rate(path, random_times, backend, True) for _ in range(args.repeats)]
            ran, cpu = max(r[0] for r in runs), min(r[1] for r in runs)
            print(f"{backend:11} {name:9} {seq:11.1f} {one:9.1f} {ran:9.1f} {cpu:13.2f}", flush=True)


def _decode_rate(path: Path, times: list[float], backend: str, per_call: bool) -> tuple[float, float]:
    """(frames/s, cpu ms/frame) of decode_frames: one frame per call or all in one call."""
    from robokit.data.video_decode import clear_decoder_cache, decode_frames

    clear_decoder_cache()
    decode_frames(path, [0.0], backend=backend)  # open the file outside the timing
    t0, c0 = time.perf_counter(), _cpu_s()
    if per_call:
        for t in times:
            decode_frames(path, [t], backend=backend)
    else:
        decode_frames(path, times, backend=backend)
    return len(times) / (time.perf_counter() - t0), (_cpu_s() - c0) * 1e3 / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["encode", "decode"], default=None)
    parser.add_argument("--frames", type=int, default=150, help="frames per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="runs per figure (best is kept)")
    args = parser.parse_args()
    threading.current_thread().name = "bench"
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as d:
        if args.only in (None, "encode"):
            bench_encode(args, Path(d))
        if args.only in (None, "decode"):
            bench_decode(args, Path(d))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
