"""π0 / π0.5 chunk latency at the published size (random weights), batch 1, one 224x224 camera.

    .venv/bin/python benchmarks/bench_pi0.py --device cuda                    # pi0 + pi05, fp32 + bf16
    .venv/bin/python benchmarks/bench_pi0.py --device cpu --tiny --repeats 3  # a smoke run of the script

Prints, per case, the median and p90 of `predict_action_chunk` (10 Euler steps, prefix computed once and
its KV cache reused) after warm-up, the same with 1 Euler step (so the prefix's share and the cost of one
denoising step can be read off), the largest difference between the cached chunk and one that recomputes
the prefix at every step (same noise), and the peak memory (max allocated on CUDA, max RSS on CPU). The
tokenizer is a character-level stand-in built here: prompts are padded to tokenizer_max_length anyway,
so the prefix length (256 image tokens + 48 / 200 text tokens) is the published one.
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


def char_tokenizer(directory: Path) -> str:
    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + [chr(c) for c in range(32, 127)] + ["\n"])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                            unk_token="<unk>").save_pretrained(str(directory))
    return str(directory)


def features(size: int) -> dict:
    return {
        "observation.images.front": {"dtype": "video", "shape": [size, size, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [8], "names": None},
        "action": {"dtype": "float32", "shape": [7], "names": None},
    }


def stats() -> dict:
    out = {}
    for name, dim in (("observation.state", 8), ("action", 7)):
        out[name] = {"mean": [0.0] * dim, "std": [1.0] * dim, "min": [-1.0] * dim, "max": [1.0] * dim,
                     "q01": [-1.0] * dim, "q99": [1.0] * dim}
    return out


TINY = {
    "vlm_overrides": {"width": 64, "depth": 2, "mlp_dim": 128, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16},
    "expert_overrides": {"width": 32, "depth": 2, "mlp_dim": 64, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16},
    "vision_overrides": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "patch_size": 14},
    "vocab_size": 128,
}


def measure(policy: Policy, obs: dict, repeats: int, num_steps: int, device: torch.device) -> list[float]:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        policy.predict_action_chunk(obs, num_steps=num_steps)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        policy.predict_action_chunk(obs, num_steps=num_steps)
        sync()
        times.append(time.perf_counter() - start)
    return times


def train_step(policy: Policy, batch_size: int, device: torch.device) -> None:
    """Seconds per optimizer step on random data, bf16 autocast, the whole model trained (as openpi fine-tunes)."""
    cfg = policy.config
    g = torch.Generator().manual_seed(1)
    batch = {"observation.images.front": torch.rand(batch_size, 3, 224, 224, generator=g).to(device),
             "observation.state": torch.randn(batch_size, 8, generator=g).to(device),
             "action": torch.randn(batch_size, cfg.chunk_size, 7, generator=g).to(device),
             "task": ["pick up the red cube"] * batch_size}
    policy.train()
    optimizer = torch.optim.AdamW(policy.optimizer_param_groups(), lr=cfg.optimizer_lr, betas=cfg.optimizer_betas,
                                  fused=device.type == "cuda")
    times = []
    for i in range(8):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss, _ = policy(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    print(f"      train step (batch {batch_size}, bf16 autocast, AdamW on all {sum(p.numel() for p in policy.parameters()) / 1e9:.2f}B "
          f"params): median {statistics.median(times) * 1e3:.0f} ms, peak {peak:.1f} GiB allocated", flush=True)
    del optimizer
    policy.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--types", default="pi0,pi05", help="comma-separated: pi0, pi05")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--train", type=int, default=0, metavar="BATCH",
                        help="also time training steps (forward + backward + AdamW, bf16 autocast) at this batch size")
    parser.add_argument("--eager", action="store_true", help="no CUDA graph (config.cuda_graphs=False)")
    parser.add_argument("--tiny", action="store_true", help="a tiny config (a smoke test of this script)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    tokenizer = char_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, {'eager' if args.eager else 'CUDA graph per chunk on GPUs'}, batch 1, one 224x224 camera, 8-dim state, 7-dim action, TF32 matmuls on")
    for kind in args.types.split(","):
        for dtype_name in args.dtypes.split(","):
            torch.manual_seed(0)
            config = make_config(kind, tokenizer_name=tokenizer, **(TINY if args.tiny else {}))
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            with torch.device(device):
                policy = Policy.build(config, features(224), stats())
            policy = policy.to(device).eval()
            with torch.no_grad():  # adaRMS starts at zero (closed residual gates); random weights everywhere instead
                for name, p in policy.named_parameters():
                    if ".dense." in name:
                        p.normal_(0.0, 0.02)
            if dtype_name == "bf16":
                policy.to(torch.bfloat16)
            if args.eager:
                policy.config = dataclasses.replace(policy.config, cuda_graphs=False)
            if device.type == "cuda":
                torch.cuda.synchronize()
                weights = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
            n_params = sum(p.numel() for p in policy.parameters())
            g = torch.Generator().manual_seed(0)
            obs = {"observation.images.front": torch.rand(1, 3, 224, 224, generator=g).to(device),
                   "observation.state": torch.randn(1, 8, generator=g).to(device), "task": "pick up the red cube"}
            full = measure(policy, obs, args.repeats, config.num_inference_steps, device)
            one = measure(policy, obs, args.repeats, 1, device)
            if device.type == "cuda":
                peak = (f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB allocated "
                        f"({weights / 2**30:.1f} GiB of it the weights)")
            else:
                peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB RSS"
            med, p90 = statistics.median(full) * 1e3, sorted(full)[int(0.9 * (len(full) - 1))] * 1e3
            med1 = statistics.median(one) * 1e3
            step = (med - med1) / (config.num_inference_steps - 1)
            noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=g).to(device)
            cached = policy.predict_action_chunk(obs, noise=noise)
            recomputed = policy.predict_action_chunk(obs, noise=noise, use_kv_cache=False)
            diff = (cached - recomputed).abs().max().item()
            print(f"{kind:5s} {dtype_name:5s} {n_params / 1e9:.2f}B params: chunk median {med:7.1f} ms, p90 {p90:7.1f} ms "
                  f"({config.num_inference_steps} steps); 1 step {med1:7.1f} ms -> prefix + 1 step {med1:.1f} ms, "
                  f"each further step {step:.1f} ms; peak {peak}; "
                  f"KV cache vs prefix recomputed each step: max |diff| {diff:.2e} (raw action units)", flush=True)
            if args.train and dtype_name == "fp32":
                train_step(policy, args.train, device)
            del policy


if __name__ == "__main__":
    main()
