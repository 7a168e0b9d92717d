"""SmolVLA chunk latency at the published size (random weights), batch 1, 1 or 2 cameras of 512x512.

    .venv/bin/python benchmarks/bench_smolvla.py --device cuda                     # fp32 + bf16, 1 and 2 cameras
    .venv/bin/python benchmarks/bench_smolvla.py --device cpu --cams 1 --repeats 5
    .venv/bin/python benchmarks/bench_smolvla.py --device cpu --tiny --repeats 3   # a smoke run of the script

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
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

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
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test backbone instead of the published one")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
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
