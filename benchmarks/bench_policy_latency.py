"""Policy speed: predict_action_chunk latency and training seconds per step, fp32 and bf16.

    .venv/bin/python benchmarks/bench_policy_latency.py                 # every case, 2 threads
    .venv/bin/python benchmarks/bench_policy_latency.py --cases act1 --repeats 20 --bf16

Cases (default configs, random init, random inputs):
  act1 / act2      ACT, 1 or 2 cameras 480x640 + 14-dim state, one chunk
  diff10 / diff100 Diffusion Policy, one 96x96 camera + 2-dim state, 10 / 100 inference steps
  act1_train / diff_train   one training step (forward + backward + AdamW) at batch 8
Prints median and p90 (ms or s) after warm-up, peak RSS growth, and for ACT the FLOPs per chunk
(counted with torch.utils.flop_counter) over the latency.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import time

import torch

from robokit.policies import Policy, make_config


def features(cams: int, hw: tuple[int, int], state: int, action: int) -> dict:
    out = {f"observation.images.cam{i}": {"dtype": "video", "shape": [hw[0], hw[1], 3], "names": None} for i in range(cams)}
    out["observation.state"] = {"dtype": "float32", "shape": [state], "names": None}
    out["action"] = {"dtype": "float32", "shape": [action], "names": None}
    return out


def stats(feats: dict) -> dict:
    out = {}
    for k, v in feats.items():
        shape = (3, 1, 1) if v["dtype"] == "video" else tuple(v["shape"])
        out[k] = {"mean": torch.zeros(shape), "std": torch.ones(shape), "min": -torch.ones(shape), "max": torch.ones(shape)}
    return out


def observation(feats: dict, batch: int, steps: int | None = None) -> dict:
    obs = {}
    for k, v in feats.items():
        if k == "action":
            continue
        shape = (v["shape"][2], v["shape"][0], v["shape"][1]) if v["dtype"] == "video" else tuple(v["shape"])
        lead = (batch,) if steps is None else (batch, steps)
        obs[k] = torch.rand(lead + shape)
    return obs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def report(name: str, times: list[float], rss_before: float, extra: str = "") -> None:
    med = statistics.median(times)
    p90 = sorted(times)[max(0, int(round(0.9 * len(times))) - 1)]
    print(f"{name:28s} median {med * 1e3:9.1f} ms   p90 {p90 * 1e3:9.1f} ms   peak RSS +{peak_rss_mb() - rss_before:7.0f} MB {extra}",
          flush=True)


def act_case(cams: int, args, train: bool) -> None:
    feats = features(cams, (480, 640), 14, 14)
    policy = Policy.build(make_config("act"), feats, stats(feats))
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext
    tag = f"ACT {cams} cam{'s' if cams > 1 else ''}" + (" bf16" if args.bf16 else "")
    rss = peak_rss_mb()
    if not train:
        policy.eval()
        obs = observation(feats, 1)
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with ctx(), counter:  # FlopCounterMode needs autograd on: count the network itself
            policy.model(policy.normalizer(obs), policy.image_features)
        flops = counter.get_total_flops()
        with torch.inference_mode(), ctx():
            times = timed(lambda: policy.predict_action_chunk(obs), args.repeats, args.warmup)
        gflops = flops / 1e9
        report(tag + ", one chunk", times, rss, f"  {gflops:.1f} GFLOP -> {gflops / statistics.median(times):.0f} GFLOP/s")
        return
    policy.train()
    batch = observation(feats, 8)
    batch["action"] = torch.randn(8, policy.config.chunk_size, 14)
    batch["action_is_pad"] = torch.zeros(8, policy.config.chunk_size, dtype=torch.bool)
    opt = torch.optim.AdamW(policy.optimizer_param_groups(), lr=1e-5)

    def step():
        with ctx():
            loss, _ = policy(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    report(tag + ", train step b=8", timed(step, max(3, args.repeats // 4), 1), rss)


def diffusion_case(steps: int | None, args, train: bool) -> None:
    feats = features(1, (96, 96), 2, 2)
    policy = Policy.build(make_config("diffusion", num_inference_steps=steps or 100), feats, stats(feats))
    n_params = sum(p.numel() for p in policy.parameters()) / 1e6
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext
    tag = "Diffusion" + (" bf16" if args.bf16 else "")
    rss = peak_rss_mb()
    if not train:
        policy.eval()
        obs = observation(feats, 1, steps=2)
        with torch.inference_mode(), ctx():
            times = timed(lambda: policy.predict_action_chunk(obs), max(3, args.repeats // (5 if steps == 100 else 1)),
                          1 if steps == 100 else args.warmup)
        report(f"{tag} ({n_params:.0f}M) {steps} steps", times, rss)
        return
    policy.train()
    batch = observation(feats, 8, steps=2)
    batch["action"] = torch.randn(8, 16, 2)
    opt = torch.optim.AdamW(policy.optimizer_param_groups(), lr=1e-4)

    def step():
        with ctx():
            loss, _ = policy(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    report(f"{tag} train step b=8", timed(step, max(3, args.repeats // 4), 1), rss)


CASES = {
    "act1": lambda a: act_case(1, a, False),
    "act2": lambda a: act_case(2, a, False),
    "diff10": lambda a: diffusion_case(10, a, False),
    "diff100": lambda a: diffusion_case(100, a, False),
    "act1_train": lambda a: act_case(1, a, True),
    "diff_train": lambda a: diffusion_case(None, a, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (AMX on this CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, {'bf16 autocast' if args.bf16 else 'fp32'}")
    for name in args.cases:
        CASES[name](args)


if __name__ == "__main__":
    main()
