"""Protocol overhead of robokit serving on loopback: round trip minus the server's inference time.

Two 480x640 RGB cameras + a 14-dim state per observation, a policy whose inference is negligible
(it returns zeros), the server in its own process. Each request: the client hands an observation
to its backend (encoding, JPEG when asked, parts, gRPC), the server decodes it, converts it to the
policy's float (1, 3, 480, 640) layout, "predicts" a (50, 14) chunk and streams it back. The
overhead is everything but inference: client encoding + transfer + server decoding/conversion +
queueing + the chunk's way back.

    python benchmarks/bench_serving_overhead.py [--n 200] [--jpeg-quality 90]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np

H, W, STATE, CHUNK = 480, 640, 14, 50
FEATURES = {
    "observation.images.top": {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
    "observation.images.wrist": {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
    "observation.state": {"dtype": "float32", "shape": [STATE], "names": None},
    "action": {"dtype": "float32", "shape": [STATE], "names": None},
}


class NullPolicy:
    """Declares the features of a two-camera bimanual policy; predicts zeros in microseconds."""

    def __init__(self):
        import torch

        from robokit.policies.config import FeatureType, PolicyFeature

        self.torch = torch
        self.input_features = {"observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
                               "observation.images.wrist": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
                               "observation.state": PolicyFeature(FeatureType.STATE, (STATE,))}
        self.output_features = {"action": PolicyFeature(FeatureType.ACTION, (STATE,))}
        self.config = SimpleNamespace(type="null", chunk_size=CHUNK, n_obs_steps=1)
        self.device = torch.device("cpu")

    def predict_action_chunk(self, obs):
        return self.torch.zeros(1, CHUNK, STATE)

    def reset(self):
        pass


def serve(port_file: str) -> None:
    from robokit.serving.server import PolicyServer, ServeConfig

    server = PolicyServer(ServeConfig(port=0), loader=lambda path, revision, device: NullPolicy()).start()
    with open(port_file, "w") as f:
        f.write(str(server.port))
    server.wait()


def camera_frame(seed: int) -> np.ndarray:
    """A camera-like frame: smooth shading, edges and sensor noise (JPEG sizes like a real scene)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    frame = np.stack([x / W * 200, y / H * 180, (x + y) / (H + W) * 150], -1)
    for _ in range(12):  # a few objects
        cy, cx, r = rng.integers(0, H), rng.integers(0, W), rng.integers(20, 90)
        frame[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    frame += rng.normal(0, 4, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def measure(address: str, n: int, jpeg_quality: int | None) -> dict:
    from robokit.serving.backends import Arrived
    from robokit.serving.engine import ObservationData
    from robokit.serving.transport import RemoteBackend

    frames = [camera_frame(i) for i in range(4)]
    backend = RemoteBackend(address, "null", FEATURES, jpeg_quality=jpeg_quality)
    rtts, inference, breakdown = [], [], {"queue": [], "preprocess": [], "postprocess": []}
    try:
        for i in range(n + 10):  # 10 warm-up requests
            tensors = {"observation.images.top": frames[i % 4], "observation.images.wrist": frames[(i + 1) % 4],
                       "observation.state": np.full(STATE, i, np.float32)}
            t0 = time.perf_counter()
            backend.submit(ObservationData(timestep=i, tensors=tensors, timestamp=t0, must_process=True))
            arrived = None
            while arrived is None:
                for event in backend.poll():
                    if isinstance(event, Arrived) and event.chunk.observation_timestep == i:
                        arrived = event
                if backend.error:
                    raise backend.error
                if arrived is None:
                    time.sleep(0.0001)
            if i >= 10:
                rtts.append((arrived.received_at - t0) * 1e3)
                inference.append(arrived.chunk.timing_ms["inference"])
                for key in breakdown:
                    breakdown[key].append(arrived.chunk.timing_ms[key])
    finally:
        backend.close()
    overhead = np.asarray(rtts) - np.asarray(inference)
    return {
        "jpeg_quality": jpeg_quality, "n": n,
        "overhead_ms": {"p50": float(np.median(overhead)), "p95": float(np.percentile(overhead, 95)),
                        "mean": float(overhead.mean())},
        "round_trip_ms_p50": float(np.median(rtts)), "inference_ms_p50": float(np.median(inference)),
        "server_ms_p50": {k: float(np.median(v)) for k, v in breakdown.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="requests per setting")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--server-threads", type=int, default=0, help="OMP_NUM_THREADS of the server (0: default)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    import tempfile
    from pathlib import Path

    port_file = Path(tempfile.mkdtemp()) / "port"
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.server_threads)} if args.server_threads else {})}
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.1)
        address = f"127.0.0.1:{port_file.read_text()}"
        raw_mb = 2 * H * W * 3 / 2**20
        print(f"loopback, server in its own process; observation = 2 x {H}x{W} RGB + {STATE}-dim state "
              f"({raw_mb:.2f} MiB raw); chunk ({CHUNK}, {STATE}); {args.n} requests per setting")
        results = [measure(address, args.n, None), measure(address, args.n, args.jpeg_quality)]
        for r in results:
            label = "raw frames " if r["jpeg_quality"] is None else f"JPEG q{r['jpeg_quality']}"
            o, s = r["overhead_ms"], r["server_ms_p50"]
            print(f"{label}: overhead median {o['p50']:.2f} ms, p95 {o['p95']:.2f} ms (round trip median "
                  f"{r['round_trip_ms_p50']:.2f} ms, inference {r['inference_ms_p50']:.3f} ms; server median: "
                  f"decode+convert {s['preprocess']:.2f}, queue {s['queue']:.2f}, postprocess {s['postprocess']:.2f} ms)")
        print(json.dumps(results))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
