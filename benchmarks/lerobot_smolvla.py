"""LeRobot 0.4.4's side of bench_smolvla.py: a SmolVLA chunk timer run in the reference LeRobot venv.

    /tmp/venv-lerobot/bin/python benchmarks/lerobot_smolvla.py --backbone DIR --threads 1

`DIR` is the backbone folder bench_smolvla.py wrote (SmolVLM2-500M's config.json + the byte tokenizer);
a copy beside it gets the processor files LeRobot's SmolVLMWithExpertModel loads (`AutoProcessor`).
LeRobot's defaults are the published SmolVLA (16 VLM layers, expert width 0.75, chunk 50, 10 steps,
512x512), random weights (`load_vlm_weights=False`, nothing downloaded). The process stays up and
answers the parent, one JSON line in, one RESULT line out, so that both sides' rounds interleave:

    {"cams": 1, "dtype": "fp32", "repeats": 2, "warmup": 1}   -> RESULT {"times": [...], "cpu": [...]}

The timed call is what a robot loop does: LeRobot's pre-processor (tokenize, normalize), the policy's
predict_action_chunk, the post-processor (unnormalize); the inputs are drawn as robokit's (seed 1:
cameras, state, noise) so both sides see the same image, state, instruction and noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors
from side_by_side import emit

TASK = "pick up the red cube and put it in the bin"
SIZE = 512


def with_processor(backbone: Path) -> Path:
    """A copy of the backbone folder with the SmolVLMProcessor files LeRobot's model loads."""
    from transformers import AutoTokenizer, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    out = backbone.parent / (backbone.name + "_lerobot")
    if out.exists():
        return out
    shutil.copytree(backbone, out)
    names = {"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
             "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"}
    tokenizer = AutoTokenizer.from_pretrained(out, extra_special_tokens=names)
    SmolVLMProcessor(image_processor=SmolVLMImageProcessor(), tokenizer=tokenizer,
                     video_processor=SmolVLMVideoProcessor(), image_seq_len=64).save_pretrained(out)
    return out


def timed(fn, repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (this process) of each of `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def build(folder: Path, cams: int):
    inputs = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, SIZE, SIZE)) for i in range(cams)}
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (6,))
    outputs = {"action": PolicyFeature(FeatureType.ACTION, (6,))}
    config = SmolVLAConfig(input_features=inputs, output_features=outputs, vlm_model_name=str(folder),
                           load_vlm_weights=False, device="cpu")
    torch.manual_seed(0)
    policy = SmolVLAPolicy(config).eval()
    stats = {k: {"mean": torch.zeros(6), "std": torch.ones(6)} for k in ("observation.state", "action")}
    pre, post = make_smolvla_pre_post_processors(config, dataset_stats=stats)
    g = torch.Generator().manual_seed(1)  # the same draws, in the same order, as bench_smolvla.py
    obs = {f"observation.images.cam{i}": torch.rand(1, 3, SIZE, SIZE, generator=g) for i in range(cams)}
    obs["observation.state"] = torch.randn(1, 6, generator=g)
    obs["task"] = TASK
    noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=g)
    return policy, pre, post, obs, noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = with_processor(args.backbone)
    built: dict[int, tuple] = {}
    for line in sys.stdin:
        request = json.loads(line)
        cams, dtype = request["cams"], torch.bfloat16 if request["dtype"] == "bf16" else torch.float32
        if cams not in built:
            built.clear()  # one model at a time: memory
            built[cams] = build(folder, cams)
        policy, pre, post, obs, noise = built[cams]
        # bf16 as LeRobot runs its published checkpoint: the VLM and the expert (`vlm_with_expert`) in
        # bfloat16, the projections around them (state, action in/out, time MLP) in float32
        policy.to(torch.float32)
        policy.model.vlm_with_expert.to(dtype)

        def chunk(policy=policy, pre=pre, post=post, obs=obs, noise=noise):
            return post(policy.predict_action_chunk(pre(dict(obs)), noise=noise))

        try:
            with torch.inference_mode():
                times, cpu = timed(chunk, request["repeats"], request["warmup"])
            emit({"times": times, "cpu": cpu})
        except Exception as err:  # noqa: BLE001 - the parent reports the case as failed and goes on
            emit({"error": f"{type(err).__name__}: {err}"})


if __name__ == "__main__":
    main()
