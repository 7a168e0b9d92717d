"""Recording throughput: two 480x640 cameras + 14-dim state/action, as in issue 2's baseline table,
side by side with LeRobot 0.4.4 on the same frames in the same run.

    .venv/bin/python benchmarks/bench_recording.py [--episodes 4] [--frames 150] [--rounds 3] [--codec av1]
    .venv/bin/python benchmarks/bench_recording.py --no-lerobot --skip-paced     # robokit only

Every episode holds `--frames` distinct frames (150: the reference workload), generated before timing
and written once to .npy files that the LeRobot side (benchmarks/lerobot_recording.py, run with
--lerobot-python, the reference venv of ../shared/tools/lerobot-reference/make-venv) loads, so both
record the same pixels. Prints (a) frames/s recording as fast as possible (add_frame + save_episode
+ finalize, encoding included), rounds interleaved robokit / LeRobot with its `create()` defaults /
LeRobot with its streaming encoder, medians and per-round ratios; and (b) robokit alone paced at
30 fps: whether add_frame kept real time, and how long each save_episode took.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robokit.data import RobotDataset
from robokit.data.synthetic import SyntheticEpisode, synthetic_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import DEFAULT_LEROBOT_PYTHON, host_line, lerobot_python, run_child, summary

LEROBOT_CODECS = {"av1": "libsvtav1", "h264": "h264", "hevc": "hevc"}

FPS = 30


def make_frames(n_distinct: int) -> tuple[dict, list[dict]]:
    features = synthetic_features(height=480, width=640, state_dim=14)
    episode = SyntheticEpisode(features, seed=0)
    return features, [episode.frame(i, FPS) for i in range(n_distinct)]


def write_frames(frames: list[dict], folder: Path) -> None:
    """The frames as .npy files for the LeRobot side (the same pixels and values robokit records)."""
    folder.mkdir(parents=True, exist_ok=True)
    for cam in ("front", "wrist"):
        np.save(folder / f"{cam}.npy", np.stack([f[f"observation.images.{cam}"] for f in frames]))
    for key in ("observation.state", "action"):
        np.save(folder / f"{key.split('.')[-1]}.npy", np.stack([f[key] for f in frames]))


def record(root: Path, features, frames, episodes: int, length: int, codec: str, pace: bool) -> dict:
    add_times, save_times = [], []
    start = time.perf_counter()
    ds = RobotDataset.create(root, fps=FPS, features=features, robot_type="bench", video_codec=codec)
    tick = time.perf_counter()
    distinct = set()
    for _ in range(episodes):
        for i in range(length):
            frame = frames[i % len(frames)]
            distinct.add(id(frame))
            t0 = time.perf_counter()
            ds.add_frame(frame)
            add_times.append(time.perf_counter() - t0)
            if pace:
                tick += 1 / FPS
                time.sleep(max(0.0, tick - time.perf_counter()))
        t0 = time.perf_counter()
        ds.save_episode()
        save_times.append(time.perf_counter() - t0)
        tick = time.perf_counter()
    t0 = time.perf_counter()
    ds.finalize()
    finalize_s = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {"fps": episodes * length / total, "distinct": len(distinct), "add_ms": np.array(add_times) * 1e3, "save_s": save_times, "finalize_s": finalize_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150, help="frames per episode, all distinct")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved unpaced runs of each side")
    parser.add_argument("--codec", default="av1", choices=list(LEROBOT_CODECS))
    parser.add_argument("--skip-paced", action="store_true")
    parser.add_argument("--lerobot-python", default=None,
                        help="interpreter of the reference LeRobot 0.4.4 venv, built by ../shared/tools/lerobot-reference/"
                             f"make-venv (default: {DEFAULT_LEROBOT_PYTHON}; without it, robokit only)")
    parser.add_argument("--lerobot-modes", nargs="+", default=["default", "streaming"], choices=["default", "streaming"],
                        help="LeRobot's create() defaults (PNG frames, encoded at save_episode) and/or its streaming encoder")
    parser.add_argument("--no-lerobot", action="store_true", help="robokit only")
    args = parser.parse_args()
    lerobot = lerobot_python(args.lerobot_python, wanted=not args.no_lerobot)
    print(host_line(), flush=True)
    features, frames = make_frames(args.frames)
    work = Path(tempfile.mkdtemp(prefix="robokit-bench-rec-"))
    try:
        if lerobot:
            write_frames(frames, work / "frames")
        sides = ["robokit"] + ([f"lerobot-{m}" for m in args.lerobot_modes] if lerobot else [])
        results: dict[str, list] = {side: [] for side in sides}
        for run in range(args.rounds):
            for side in sides if run % 2 == 0 else sides[::-1]:  # the order alternates between rounds
                if side == "robokit":
                    result = record(work / f"fast{run}", features, frames, args.episodes, args.frames, args.codec, pace=False)
                    print(f"  [round {run + 1} robokit] {result['fps']:.1f} frames/s, {result['distinct']} distinct "
                          f"frames (save_episode {np.mean(result['save_s']):.2f} s avg, finalize {result['finalize_s']:.2f} s)", flush=True)
                    results[side].append({"fps": result["fps"]})
                    continue
                cmd = [lerobot, str(Path(__file__).with_name("lerobot_recording.py")), "--frames-dir", str(work / "frames"),
                       "--root", str(work / f"{side}{run}"), "--episodes", str(args.episodes), "--frames", str(args.frames),
                       "--codec", LEROBOT_CODECS[args.codec]] + (["--streaming"] if side.endswith("streaming") else [])
                results[side].append(run_child(cmd, f"round {run + 1} {side}"))
        shape = f"{args.episodes} episodes x {args.frames} distinct frames, 2 cameras 480x640, 14-dim state/action"
        print(f"\nrecording, unpaced, {args.codec} ({shape}); frames/s, median over {args.rounds} rounds (range):")
        for side in sides[1:]:
            print(summary(f"robokit vs {side}", "fps", results["robokit"], results[side], "frames/s",
                          higher_is_better=True, digits=1))
        if len(sides) == 1:
            print(summary("robokit", "fps", results["robokit"], [], "frames/s", digits=1))
        if not args.skip_paced:
            result = record(work / "paced", features, frames, args.episodes, args.frames, args.codec, pace=True)
            add = result["add_ms"]
            late = int((add > 1000 / FPS).sum())
            print(f"robokit recording, paced at {FPS} fps: add_frame p50 {np.percentile(add, 50):.1f} ms, "
                  f"p99 {np.percentile(add, 99):.1f} ms, max {add.max():.1f} ms, {late} of {len(add)} calls over one "
                  f"period; save_episode {', '.join(f'{s:.2f}' for s in result['save_s'])} s; "
                  f"finalize {result['finalize_s']:.2f} s")
        print(host_line())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
