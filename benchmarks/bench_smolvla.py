"""SmolVLA chunk latency at the published size (random weights), batch 1, 1 or 2 cameras of 512x512.

    .venv/bin/python benchmarks/bench_smolvla.py --device cuda                     # fp32 + bf16, 1 and 2 cameras
    taskset -c 0 .venv/bin/python benchmarks/bench_smolvla.py --threads 1         # CPU, beside LeRobot 0.4.4
    .venv/bin/python benchmarks/bench_smolvla.py --device cpu --tiny --repeats 3 --no-lerobot  # a smoke run

On the CPU, LeRobot 0.4.4's SmolVLA runs beside robokit in the same run (`lerobot_smolvla.py`, in the
reference LeRobot venv, kept up between rounds): the same backbone config, random weights, the same
cameras, state, instruction and noise; the rounds alternate robokit, LeRobot, robokit, ... so that a
neighbour's load falls on both. Its bf16 is LeRobot's own mixed precision (VLM and expert in bf16, the
projections in fp32, as its published checkpoint runs); robokit's is `policy.to(torch.bfloat16)`. The
CPU table gives median and p90 per chunk of each side (all rounds' calls after warm-up) and the median
of the per-round ratios robokit / LeRobot.

The published SmolVLA: SmolVLM2-500M's first 16 text layers (width 960) + its SigLIP tower (12 layers,
512x512 -> 64 image tokens), an expert of width 720, chunk 50, 10 Euler steps; the backbone config and a
byte tokenizer are written offline (`smolvla_backbone.SMOLVLM2_500M`). Prints per case the median and
p90 of `predict_action_chunk` after warm-up, the same with 1 Euler step (the prefix's share), the
largest difference between the cached chunk and one recomputing the prefix at every step (same noise,
normalized units), and the peak memory (max allocated on CUDA, max RSS on CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import RESULT_PREFIX, host_line, lerobot_python

from robokit.policies import Policy, make_config
from robokit.policies.smolvla_backbone import SMOLVLM2_500M, write_backbone


def features(cams: int, size: int) -> dict:
    out = {f"observation.images.cam{i}": {"dtype": "video", "shape": [size, size, 3],
                                          "names": ["height", "width", "channels"]} for i in range(cams)}
    out["observation.state"] = {"dtype": "float32", "shape": [6], "names": None}
    out["action"] = {"dtype": "float32", "shape": [6], "names": None}
    return out


def stats(feats: dict) -> dict:
    return {k: {"mean": torch.zeros(v["shape"]), "std": torch.ones(v["shape"])}
            for k, v in feats.items() if not k.startswith("observation.images")}


def timed(fn, repeats: int, warmup: int, sync) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cams", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (per round on CPU); default 20 on CUDA, 2 on CPU")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first; default 3 on CUDA, 1 on CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test backbone instead of the published one")
    parser.add_argument("--rounds", type=int, default=3,
                        help="CPU: alternating robokit / LeRobot rounds of --repeats calls each (warm-up before the first)")
    parser.add_argument("--lerobot-python", default=None,
                        help="the reference LeRobot venv's interpreter (default /tmp/venv-lerobot/bin/python if built)")
    parser.add_argument("--no-lerobot", action="store_true", help="robokit only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.repeats is None:
        args.repeats = 20 if device.type == "cuda" else 2
    if args.warmup is None:
        args.warmup = 3 if device.type == "cuda" else 1
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    folder = Path(tempfile.mkdtemp(prefix="smolvla_bench_")) / "backbone"
    if args.tiny:
        write_backbone(folder)
        cfg = {"num_vlm_layers": 2, "resize_imgs_with_padding": (64, 64), "chunk_size": 10, "n_action_steps": 10}
        size = 64
    else:
        write_backbone(folder, **SMOLVLM2_500M)
        cfg, size = {}, 512
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads"))
    if device.type == "cpu":
        print(host_line(), flush=True)
        lerobot = lerobot_python(args.lerobot_python, wanted=not args.no_lerobot and not args.tiny)
        return side_by_side(args, folder, cfg, size, lerobot)
    print("| cameras | dtype | CUDA graph | chunk ms (median / p90) | 1-step chunk ms | cache vs recompute | peak memory |")
    print("|---|---|---|---|---|---|---|")
    for cams in args.cams:
        feats = features(cams, size)
        torch.manual_seed(0)
        policy = Policy.build(make_config("smolvla", vlm_model_name=str(folder), **cfg), feats, stats(feats))
        policy = policy.to(device).eval()
        g = torch.Generator().manual_seed(1)
        obs = {k: torch.rand(1, 3, size, size, generator=g) for k in feats if k.startswith("observation.images")}
        obs["observation.state"] = torch.randn(1, 6, generator=g)
        obs["task"] = "pick up the red cube and put it in the bin"
        noise = torch.randn(1, policy.config.chunk_size, policy.config.max_action_dim, generator=g).to(device)
        reference = None
        variants = [(d, g) for d in args.dtypes for g in ((True, False) if device.type == "cuda" else (False,))]
        for dtype, graphs in variants:
            policy.to(torch.bfloat16 if dtype == "bf16" else torch.float32)
            policy.config = dataclasses.replace(policy.config, cuda_graphs=graphs)
            try:
                reference = run_case(policy, obs, noise, cams, dtype, graphs, reference, args, device, sync)
            except Exception as err:  # noqa: BLE001 - report the case and go on with the others
                print(f"| {cams} | {dtype} | {'yes' if graphs else 'no'} | failed: {type(err).__name__}: {err} |")
        del policy
        if device.type == "cuda":
            torch.cuda.empty_cache()


def build(folder: Path, cfg: dict, cams: int, size: int):
    """The robokit policy and its inputs; the inputs are drawn as lerobot_smolvla.py draws them (seed 1)."""
    feats = features(cams, size)
    torch.manual_seed(0)
    policy = Policy.build(make_config("smolvla", vlm_model_name=str(folder), **cfg), feats, stats(feats)).eval()
    g = torch.Generator().manual_seed(1)
    obs = {k: torch.rand(1, 3, size, size, generator=g) for k in feats if k.startswith("observation.images")}
    obs["observation.state"] = torch.randn(1, 6, generator=g)
    obs["task"] = "pick up the red cube and put it in the bin"
    noise = torch.randn(1, policy.config.chunk_size, policy.config.max_action_dim, generator=g)
    return policy, obs, noise


class LeRobotSide:
    """lerobot_smolvla.py in the LeRobot venv, kept up between rounds: one JSON request, one RESULT line."""

    def __init__(self, python: str, folder: Path, threads: int | None):
        cmd = [python, str(Path(__file__).resolve().parent / "lerobot_smolvla.py"), "--backbone", str(folder)]
        cmd += ["--threads", str(threads)] if threads else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def time(self, cams: int, dtype: str, repeats: int, warmup: int) -> tuple[list[float], list[float]] | None:
        """Wall-clock and CPU seconds of each timed call, or None (reported) if LeRobot failed."""
        self.proc.stdin.write(json.dumps({"cams": cams, "dtype": dtype, "repeats": repeats, "warmup": warmup}) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
                if "error" in result:
                    print(f"  [LeRobot] {cams} cam {dtype} failed: {result['error']}", flush=True)
                    return None
                return result["times"], result["cpu"]
            print(f"  [LeRobot] {line.rstrip()}", flush=True)
        print("  [LeRobot] exited without an answer (see its stderr above)", flush=True)
        return None

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def side_by_side(args, folder: Path, cfg: dict, size: int, lerobot: str | None) -> None:
    """CPU: robokit and LeRobot in alternating rounds per (cameras, dtype); one table row each."""
    other = LeRobotSide(lerobot, folder, args.threads) if lerobot else None
    print(f"rounds {args.rounds} x {args.repeats} calls per side after {args.warmup} warm-up; ms per chunk "
          f"(predict_action_chunk with tokenizing and normalizing, batch 1, {size}x{size} cameras)")
    print("| cameras | dtype | robokit median / p90 | LeRobot 0.4.4 median / p90 | robokit / LeRobot (rounds) | "
          "CPU s per chunk robokit / LeRobot |")
    print("|---|---|---|---|---|---|", flush=True)
    try:
        for cams in args.cams:
            policy, obs, noise = build(folder, cfg, cams, size)
            for dtype in args.dtypes:
                policy.to(torch.bfloat16 if dtype == "bf16" else torch.float32)
                chunk = functools.partial(policy.predict_action_chunk, obs, noise=noise)
                ours, theirs, ratios, cpu_ours, cpu_theirs = [], [], [], [], []
                for r in range(args.rounds):
                    warmup = args.warmup if r == 0 else 0
                    mine, cpu = wall_and_cpu(chunk, args.repeats, warmup)
                    ours += mine
                    cpu_ours += cpu
                    if other:
                        got = other.time(cams, dtype, args.repeats, warmup)
                        if got is None:
                            other.close()
                            other = None
                        else:
                            theirs += got[0]
                            cpu_theirs += got[1]
                            ratios.append(statistics.median(mine) / statistics.median(got[0]))
                row = [f"{cams}", dtype, median_p90(ours), median_p90(theirs) if theirs else "n/a"]
                row.append(f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})" if ratios else "n/a")
                row.append(f"{statistics.median(cpu_ours):.2f} / " + (f"{statistics.median(cpu_theirs):.2f}" if cpu_theirs else "n/a"))
                print("| " + " | ".join(row) + " |", flush=True)
            del policy, chunk
    finally:
        if other:
            other.close()
    print(f"peak RSS of the robokit process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


def wall_and_cpu(fn, repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (this process: on a shared machine the less noisy one) of each timed call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def median_p90(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    return f"{statistics.median(times) * 1e3:.0f} / {p90 * 1e3:.0f}"


def run_case(policy, obs, noise, cams, dtype, graphs, reference, args, device, sync):
    """Time one case and print its row; returns the first row's chunk (the reference of the later rows)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = timed(lambda: policy.predict_action_chunk(obs, noise=noise), args.repeats, args.warmup, sync)
    one_step = dataclasses.replace(policy.config, num_steps=1)
    full_cfg, policy.config = policy.config, one_step
    times1 = timed(lambda: policy.predict_action_chunk(obs, noise=noise), args.repeats, args.warmup, sync)
    policy.config = dataclasses.replace(full_cfg, use_cache=False)
    uncached = policy.predict_action_chunk(obs, noise=noise)
    policy.config = full_cfg
    chunk = policy.predict_action_chunk(obs, noise=noise)
    diff = (policy.normalizer.normalize("action", chunk) - policy.normalizer.normalize("action", uncached))
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"
    if reference is None:
        reference = chunk
        vs = ""
    else:
        err = (policy.normalizer.normalize("action", chunk) - policy.normalizer.normalize("action", reference))
        vs = f"; vs first row {err.abs().max().item():.2g}"
    med, p90 = statistics.median(times) * 1e3, statistics.quantiles(times, n=10)[-1] * 1e3
    print(f"| {cams} | {dtype} | {'yes' if graphs else 'no'} | {med:.1f} / {p90:.1f} | {statistics.median(times1) * 1e3:.1f} | "
          f"{diff.abs().max().item():.2g}{vs} | {peak} |", flush=True)
    return reference


if __name__ == "__main__":
    main()
