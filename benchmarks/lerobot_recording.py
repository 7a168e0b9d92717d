"""LeRobot 0.4.4's side of bench_recording.py: one unpaced recording run, in the reference LeRobot venv.

    /tmp/venv-lerobot/bin/python benchmarks/lerobot_recording.py --frames-dir DIR --root OUT [--streaming]

Reads the frames bench_recording.py wrote (`front.npy`, `wrist.npy`: (N, 480, 640, 3) uint8;
`state.npy`, `action.npy`: (N, 14) float32), loads them into memory before the clock starts, and
records `--episodes` episodes of `--frames` frames (frame i of an episode is frame i % N) through
`LeRobotDataset.create` / `add_frame` / `save_episode` / `finalize`, as bench_recording.py does with
robokit. Default: `create()`'s defaults (each frame written as PNG in add_frame, the episode's videos
encoded in save_episode); --streaming: its streaming encoder (frames fed to encoder threads during
add_frame). Prints one RESULT line with frames/s.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from side_by_side import emit

FPS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames-dir", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="new dataset folder (must not exist)")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150, help="frames per episode")
    parser.add_argument("--codec", default="libsvtav1", help="LeRobot vcodec (libsvtav1 is its default, AV1)")
    parser.add_argument("--streaming", action="store_true", help="LeRobot's streaming encoder")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    cams = {f"observation.images.{c}": np.load(args.frames_dir / f"{c}.npy") for c in ("front", "wrist")}
    state, action = np.load(args.frames_dir / "state.npy"), np.load(args.frames_dir / "action.npy")
    n = len(state)
    names = [f"joint_{i}.pos" for i in range(state.shape[1])]
    features = {"observation.state": {"dtype": "float32", "shape": (state.shape[1],), "names": names},
                "action": {"dtype": "float32", "shape": (action.shape[1],), "names": names}}
    for k, v in cams.items():
        features[k] = {"dtype": "video", "shape": tuple(v.shape[1:]), "names": ["height", "width", "channels"]}

    start = time.perf_counter()
    ds = LeRobotDataset.create("bench/recording", fps=FPS, features=features, root=args.root, robot_type="bench",
                               vcodec=args.codec, streaming_encoding=args.streaming)
    save_s = []
    for _ in range(args.episodes):
        for i in range(args.frames):
            j = i % n
            frame = {k: v[j] for k, v in cams.items()}
            frame |= {"observation.state": state[j], "action": action[j], "task": "move the arm"}
            ds.add_frame(frame)
        t0 = time.perf_counter()
        ds.save_episode()
        save_s.append(time.perf_counter() - t0)
    ds.finalize()
    total = time.perf_counter() - start
    fps = args.episodes * args.frames / total
    print(f"LeRobot 0.4.4 ({'streaming encoder' if args.streaming else 'create() defaults'}): {fps:.1f} frames/s "
          f"(save_episode {np.mean(save_s):.2f} s avg)", flush=True)
    emit({"fps": fps, "save_s": save_s, "distinct_frames": n})


if __name__ == "__main__":
    main()
