"""Policy speed: predict_action_chunk latency and training seconds per step, fp32 and bf16, CPU or CUDA.

    .venv/bin/python benchmarks/bench_policy_latency.py                  # every case, 2 threads, fp32
    .venv/bin/python benchmarks/bench_policy_latency.py --cases act1 --repeats 20 --bf16
    .venv/bin/python benchmarks/bench_policy_latency.py --device cuda
    .venv/bin/python benchmarks/bench_policy_latency.py --threads 1 --also-bf16 --rounds 3 --repeats 5 --warmup 1

Cases (default configs, random init, random inputs):
  act1 / act2      ACT, 1 or 2 cameras 480x640 + 14-dim state, one chunk
  diff10 / diff100 Diffusion Policy, one 96x96 camera + 2-dim state, 10 / 100 inference steps
  act1_train / diff_train   one training step (forward + backward + AdamW) at batch 8

The header describes the machine: torch's CPU capability (AVX2 / AVX512 / AMX...), the thread
count, and a large fp32 and bf16 matmul's GFLOP/s (the compute ceiling the cases are compared to).
Each case runs in its own process (so its peak memory is its own) and prints the median and p90
after warm-up, the FLOPs (torch.utils.flop_counter) with the achieved GFLOP/s and its share of the
matmul probe, and the peak memory (RSS on CPU, max allocated on CUDA).
--bf16: inference with bf16 weights (`policy.to(torch.bfloat16)`; normalization and returned
actions stay fp32; the max abs difference to fp32, in normalized action units, is printed), and
training under bf16 autocast.
Side by side with LeRobot 0.4.4 (CPU): each case runs `--rounds` times, alternating a robokit process
(fp32, and bf16 with --also-bf16) and a LeRobot process (benchmarks/lerobot_policy.py in the reference
venv, --lerobot-python; fp32, the same shapes, configs and input seed; its pre/post-processors
included as robokit's normalization is), which side goes first alternating between rounds. The summary
gives each side's median over rounds and the median of the per-round time ratios. FLOPs are counted in
the first round only. --no-lerobot: robokit alone.
ROBOKIT_ONEDNN=0 in the environment runs CPU inference on torch's plain ops instead of the oneDNN
fast path (robokit/policies/onednn.py), for a before / after comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from robokit.policies import Policy, make_config, onednn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import DEFAULT_LEROBOT_PYTHON, emit, host_line, lerobot_python, run_child, summary
from side_by_side import timed as timed_calls

COUNT_FLOPS = [True]  # set from --no-flops in main()


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


def observation(feats: dict, batch: int, steps: int | None = None, device: str = "cpu") -> dict:
    obs = {}
    for k, v in feats.items():
        if k == "action":
            continue
        shape = (v["shape"][2], v["shape"][0], v["shape"][1]) if v["dtype"] == "video" else tuple(v["shape"])
        lead = (batch,) if steps is None else (batch, steps)
        obs[k] = torch.rand(lead + shape, device=device)
    return obs


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int, device: str) -> list[float]:
    """Seconds per call after warm-up, synchronizing on CUDA (the same loop as the LeRobot side's)."""
    return timed_calls(fn, repeats, warmup, sync=(lambda: sync(device)) if device.startswith("cuda") else None)


def matmul_gflops(dtype: torch.dtype, device: str, budget_s: float = 1.0, packed: bool = False) -> float:
    """Best GFLOP/s of square matmuls (n = 256 up to 2048, larger while one product takes < 50 ms);
    `packed`: through oneDNN on a packed weight (robokit.policies.onednn, what CPU inference uses)."""
    best, n = 0.0, 256
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        with torch.inference_mode():
            product = (lambda: onednn.linear(a, b)) if packed else (lambda: a @ b)
            product()  # warm-up (and packing)
            times = timed(product, 3, 0, device)
        best = max(best, 2 * n**3 / min(times) / 1e9)
        if n >= 2048 or min(times) > 0.05 or sum(times) > budget_s:
            return best
        n *= 2


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_flops(fn) -> int | None:
    if not COUNT_FLOPS[0]:  # a later round of an interleaved run: the count does not change, the time it takes is saved
        return None
    counter = FlopCounterMode(display=False)
    with counter:  # autograd stays on: FlopCounterMode does not see inside inference_mode
        fn()
    return counter.get_total_flops()


def report(args, name: str, times: list[float], flops: int | None, extra: str = "") -> None:
    med = statistics.median(times)
    p90 = sorted(times)[max(0, int(round(0.9 * len(times))) - 1)]
    line = f"{name:34s} median {med * 1e3:9.1f} ms p90 {p90 * 1e3:9.1f} ms"  # one unit for every case
    if flops:
        gflops = flops / 1e9 / med
        line += f"  {flops / 1e9:7.1f} GFLOP {gflops:6.0f} GFLOP/s ({gflops / args.peak:4.0%} of matmul)"
    peak_mb = peak_memory_mb(args.device)
    line += f"  peak {'alloc' if args.device.startswith('cuda') else 'RSS'} {peak_mb:6.0f} MB{extra}"
    print(line, flush=True)
    emit({"median": med, "p90": p90, "n": len(times), "peak_rss_mb": peak_mb})


def optimizer(policy: Policy, args) -> torch.optim.Optimizer:
    kind = {"forloop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[args.optimizer]
    return torch.optim.AdamW(policy.optimizer_param_groups(), lr=1e-5, **kind)


def train_step_fn(policy: Policy, batch: dict, opt: torch.optim.Optimizer, args):
    def step():
        with torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
            loss, _ = policy(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def flops_only():
        with torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
            loss, _ = policy(batch)
        loss.backward()
        policy.zero_grad(set_to_none=True)

    return step, flops_only


def deviation(policy: Policy, fp32_actions: torch.Tensor, bf16_actions: torch.Tensor) -> str:
    norm = policy.normalizer.normalize
    diff = (norm("action", bf16_actions) - norm("action", fp32_actions.to(bf16_actions.device))).abs().max().item()
    return f"  | max abs diff to fp32 {diff:.3g} (normalized actions)"


def act_case(cams: int, args, train: bool) -> None:
    feats = features(cams, (480, 640), 14, 14)
    policy = Policy.build(make_config("act"), feats, stats(feats)).to(args.device)
    tag = f"ACT {cams} cam{'s' if cams > 1 else ''}" + (" bf16" if args.bf16 else "")
    if not train:
        policy.eval()
        obs = observation(feats, 1, device=args.device)
        extra = ""
        if args.bf16:
            with torch.inference_mode():
                want = policy.predict_action_chunk(obs)
            policy.to(torch.bfloat16)
            with torch.inference_mode():
                extra = deviation(policy, want, policy.predict_action_chunk(obs))
        flops = count_flops(lambda: policy.model(policy._to_network_dtype(policy.normalizer(obs)), policy.image_features))
        with torch.inference_mode():
            times = timed(lambda: policy.predict_action_chunk(obs), args.repeats, args.warmup, args.device)
        report(args, tag + ", one chunk", times, flops, extra)
        return
    policy.train()
    batch = observation(feats, 8, device=args.device)
    batch["action"] = torch.randn(8, policy.config.chunk_size, 14, device=args.device)
    batch["action_is_pad"] = torch.zeros(8, policy.config.chunk_size, dtype=torch.bool, device=args.device)
    step, flops_only = train_step_fn(policy, batch, optimizer(policy, args), args)
    report(args, tag + f", train step b=8 ({args.optimizer})", timed(step, max(2, args.repeats // 4), 1, args.device),
           count_flops(flops_only))


def diffusion_case(steps: int | None, args, train: bool) -> None:
    feats = features(1, (96, 96), 2, 2)
    policy = Policy.build(make_config("diffusion", num_inference_steps=steps or 100), feats, stats(feats)).to(args.device)
    n_params = sum(p.numel() for p in policy.parameters()) / 1e6
    tag = f"Diffusion ({n_params:.0f}M)" + (" bf16" if args.bf16 else "")
    if not train:
        policy.eval()
        obs = observation(feats, 1, steps=2, device=args.device)
        noise = torch.randn(1, policy.config.horizon, 2, device=args.device)
        extra = ""
        if args.bf16:
            with torch.inference_mode():
                want = policy.predict_action_chunk(obs, noise=noise, generator=torch.Generator(args.device).manual_seed(0))
            policy.to(torch.bfloat16)
            with torch.inference_mode():
                got = policy.predict_action_chunk(obs, noise=noise, generator=torch.Generator(args.device).manual_seed(0))
            extra = deviation(policy, want, got)
        model = policy.model
        normalized = policy._to_network_dtype(policy.normalizer(obs))
        cond_flops = count_flops(lambda: model.global_condition(normalized, policy.image_features))
        cond = model.global_condition(normalized, policy.image_features).detach()
        t = torch.zeros(1, dtype=torch.long, device=args.device)
        step_flops = count_flops(lambda: model.unet(noise.to(cond.dtype), t, cond))
        repeats = max(2, args.repeats // 5) if steps == 100 else args.repeats
        with torch.inference_mode():
            times = timed(lambda: policy.predict_action_chunk(obs), repeats, 1 if steps == 100 else args.warmup, args.device)
        flops = None if cond_flops is None else cond_flops + steps * step_flops
        report(args, f"{tag} {steps} steps", times, flops, extra)
        return
    policy.train()
    batch = observation(feats, 8, steps=2, device=args.device)
    batch["action"] = torch.randn(8, 16, 2, device=args.device)
    step, flops_only = train_step_fn(policy, batch, optimizer(policy, args), args)
    report(args, f"{tag} train step b=8 ({args.optimizer})", timed(step, max(2, args.repeats // 4), 1, args.device),
           count_flops(flops_only))


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
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (CUDA timings synchronize)")
    parser.add_argument("--bf16", action="store_true", help="bf16 weights for inference, bf16 autocast for training")
    parser.add_argument("--also-bf16", action="store_true",
                        help="each round runs robokit in fp32 and in bf16 (LeRobot stays fp32)")
    parser.add_argument("--optimizer", default="fused", choices=["fused", "foreach", "forloop"],
                        help="AdamW implementation of the training cases (robokit train uses fused)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved robokit / LeRobot rounds per case (figures: median over rounds)")
    parser.add_argument("--lerobot-python", default=None,
                        help="interpreter of the reference LeRobot 0.4.4 venv, built by ../shared/tools/lerobot-reference/"
                             f"make-venv (default: {DEFAULT_LEROBOT_PYTHON}; without it, robokit only)")
    parser.add_argument("--no-lerobot", action="store_true", help="robokit only")
    parser.add_argument("--peak", type=float, default=None, help=argparse.SUPPRESS)  # matmul probe, set for children
    parser.add_argument("--no-flops", action="store_true", help=argparse.SUPPRESS)  # children after the first round
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    COUNT_FLOPS[0] = not args.no_flops
    if args.peak is not None:  # a child process: one case
        CASES[args.cases[0]](args)
        return
    lerobot = lerobot_python(args.lerobot_python, wanted=not args.no_lerobot and args.device == "cpu")
    print(host_line())
    if args.device.startswith("cuda"):
        machine = f"{torch.cuda.get_device_name(args.device)}, CUDA {torch.version.cuda}"
    else:
        machine = f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    fp32 = matmul_gflops(torch.float32, args.device)
    bf16 = matmul_gflops(torch.bfloat16, args.device)
    probe = f"matmul probe: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s"
    if args.device == "cpu" and onednn.is_enabled():  # the packed oneDNN path the CPU inference takes
        packed32 = matmul_gflops(torch.float32, args.device, packed=True)
        packed16 = matmul_gflops(torch.bfloat16, args.device, packed=True)
        probe += f" (oneDNN packed: {packed32:.0f} / {packed16:.0f}; shares below are of the larger)"
        fp32, bf16 = max(fp32, packed32), max(bf16, packed16)
    print(f"torch {torch.__version__}, {machine}; {probe}")
    modes = ["fp32", "bf16"] if args.also_bf16 else ["bf16" if args.bf16 else "fp32"]
    print(f"robokit modes: {', '.join(modes)} (bf16: weights for inference, autocast for training); "
          f"{'LeRobot 0.4.4 fp32 (' + lerobot + ') interleaved, ' + str(args.rounds) + ' rounds' if lerobot else 'no LeRobot side'}",
          flush=True)
    common = ["--repeats", str(args.repeats), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    lines = []
    for name in args.cases:
        results: dict[str, list] = {mode: [] for mode in modes + ["lerobot"]}
        for r in range(args.rounds):
            runs = [(mode, [sys.executable, __file__, *common, "--device", args.device, "--optimizer", args.optimizer,
                            "--cases", name, "--peak", json.dumps(bf16 if mode == "bf16" else fp32)]
                     + (["--bf16"] if mode == "bf16" else []) + (["--no-flops"] if r else [])) for mode in modes]
            if lerobot:
                side = ("lerobot", [lerobot, str(Path(__file__).with_name("lerobot_policy.py")), "--case", name, *common])
                runs.insert(0 if r % 2 else 1, side)  # ABBA: which side goes first alternates between rounds
            for mode, cmd in runs:
                results[mode].append(run_child(cmd, f"{name} round {r + 1} {mode}"))
        for mode in modes:
            if lerobot:
                lines.append(summary(f"{name} (robokit {mode})", "median", results[mode], results["lerobot"], "ms", 1e3))
            else:
                lines.append(summary(f"{name} (robokit {mode})", "median", results[mode], [], "ms", 1e3))
        lerobot_rss = [r["peak_rss_mb"] for r in results["lerobot"] if r]
        ours_rss = [r["peak_rss_mb"] for r in results[modes[0]] if r]
        if lerobot_rss and ours_rss:
            lines.append(f"{'':44s} peak RSS robokit {modes[0]} {max(ours_rss):.0f} MB, LeRobot {max(lerobot_rss):.0f} MB")
    print("\nmedian over rounds of each side's per-process median (range over rounds):")
    print("\n".join(lines))
    print(host_line())


if __name__ == "__main__":
    main()
