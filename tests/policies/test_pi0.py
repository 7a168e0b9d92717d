"""π0 / π0.5: tiny configs and a tiny tokenizer built offline; LeRobot's parameter names at full size."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from robokit.data import RobotDataset
from robokit.policies import Policy, make_config
from robokit.policies.pi0 import PI0Model, discretize_state
from robokit.policies.pi0_config import PI0Config, PI05Config
from tests.policies.conftest import make_batch, make_features, make_observation, make_stats

DATA = Path(__file__).parent / "data"
TYPES = ["pi0", "pi05"]


def make_tokenizer(directory: Path) -> str:
    """A character-level tokenizer with Gemma's special tokens (<pad> 0, <eos> 1, <bos> 2), saved to a folder."""
    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>")
    fast.save_pretrained(str(directory))
    return str(directory)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def tiny_config(kind: str, tokenizer: str, **overrides):
    shape = {"depth": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 8}
    fields = {
        "vlm_overrides": {**shape, "width": 32, "mlp_dim": 64},
        "expert_overrides": {**shape, "width": 16, "mlp_dim": 32},
        "vision_overrides": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "patch_size": 8},
        "vocab_size": 128, "tokenizer_name": tokenizer, "tokenizer_max_length": 24 if kind == "pi0" else 64,
        "image_resolution": (32, 32), "chunk_size": 4, "n_action_steps": 4, "max_state_dim": 4, "max_action_dim": 4,
        "num_inference_steps": 3,
    }
    fields.update(overrides)
    return make_config(kind, **fields)


FEATURES = make_features(cams=("front",), state_dim=3, action_dim=2, hw=(24, 32))


def build(kind: str, tokenizer: str, seed: int = 0, **overrides) -> Policy:
    torch.manual_seed(seed)
    policy = Policy.build(tiny_config(kind, tokenizer, **overrides), FEATURES, make_stats(FEATURES))
    if kind == "pi05":  # adaRMS starts as the identity (zeros); random modulation exercises its wiring
        with torch.no_grad():
            for name, p in policy.named_parameters():
                if ".dense." in name:
                    p.normal_(0, 0.1)
    return policy


def observation(batch: int = 2, seed: int = 0) -> dict:
    obs = make_observation(FEATURES, batch=batch, seed=seed)
    obs["task"] = ["pick up the cube", "open_the drawer"][:batch]
    return obs


def noise_for(policy: Policy, batch: int = 2, seed: int = 1) -> torch.Tensor:
    cfg = policy.config
    return torch.randn(batch, cfg.chunk_size, cfg.max_action_dim, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------- LeRobot names
def read_names(path: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        out[key] = tuple(int(s) for s in re.findall(r"\d+", shape))
    return out


@pytest.mark.parametrize("kind", TYPES)
def test_parameter_names_and_shapes_equal_lerobot_at_published_size(kind):
    """Every state_dict entry of the default (published) π0 / π0.5 has LeRobot 0.4.4's name and shape."""
    expected = read_names(DATA / f"lerobot_{kind}_state_dict.txt")
    config = PI0Config() if kind == "pi0" else PI05Config()
    with torch.device("meta"):
        model = PI0Model(config)
    ours = {f"model.{k}": tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    assert len(ours) == (778 if kind == "pi0" else 813)


def test_published_defaults():
    cfg = PI0Config()
    assert (cfg.chunk_size, cfg.num_inference_steps, cfg.max_state_dim, cfg.max_action_dim) == (50, 10, 32, 32)
    assert cfg.image_resolution == (224, 224) and cfg.vlm_shape.width == 2048 and cfg.expert_shape.width == 1024
    assert PI05Config().tokenizer_max_length == 200 and PI05Config().normalization_mapping["STATE"] == "quantiles"


# --------------------------------------------------------------------------------------- save and load
@pytest.mark.parametrize("kind", TYPES)
def test_save_load_round_trip_gives_identical_chunks(kind, tokenizer_dir, tmp_path):
    policy = build(kind, tokenizer_dir)
    obs, noise = observation(), noise_for(policy)
    before = policy.predict_action_chunk(obs, noise=noise)
    assert before.shape == (2, 4, 2) and torch.isfinite(before).all()
    policy.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "tokenizer" / "tokenizer.json").exists()
    loaded = Policy.from_pretrained(tmp_path / "ckpt")
    assert type(loaded) is type(policy) and loaded.config.type == kind
    assert Path(loaded.config.tokenizer_name) == (tmp_path / "ckpt" / "tokenizer").resolve()
    after = loaded.predict_action_chunk(obs, noise=noise)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    # A different noise gives a different chunk: the comparison above can fail.
    assert not torch.allclose(loaded.predict_action_chunk(obs, noise=noise_for(policy, seed=2)), before)


def test_lerobot_style_weights_load(tokenizer_dir):
    """Keys without `model.`, and a file where safetensors kept only lm_head of the tied lm_head/embed_tokens."""
    policy = build("pi0", tokenizer_dir, seed=0)
    other = build("pi0", tokenizer_dir, seed=1)
    obs, noise = observation(), noise_for(policy)
    state = {k.removeprefix("model."): v.clone() for k, v in policy.state_dict().items() if k.startswith("model.")}
    del state["paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"]
    state["time_mlp_in.weight"] = state.pop("action_time_mlp_in.weight")  # openpi's name for π0's MLP
    assert not torch.allclose(other.predict_action_chunk(obs, noise=noise), policy.predict_action_chunk(obs, noise=noise))
    other.load_weights(state)
    torch.testing.assert_close(other.predict_action_chunk(obs, noise=noise), policy.predict_action_chunk(obs, noise=noise))


def test_weights_in_paligemmas_older_layout_load(tokenizer_dir):
    """openpi-converted checkpoints from before transformers 4.52 name PaliGemma's parts differently."""
    policy = build("pi05", tokenizer_dir, seed=0)
    other = build("pi05", tokenizer_dir, seed=1)
    pg = "model.paligemma_with_expert.paligemma."
    renames = {pg + "model.language_model.": pg + "language_model.model.", pg + "lm_head.": pg + "language_model.lm_head.",
               pg + "model.vision_tower.": pg + "vision_tower.", pg + "model.multi_modal_projector.": pg + "multi_modal_projector."}
    state = {}
    for key, value in policy.state_dict().items():
        for new, old in renames.items():
            if key.startswith(new):
                key = old + key[len(new):]
        state[key] = value.clone()
    state["model.paligemma_with_expert.gemma_expert.model.embed_tokens.weight"] = torch.zeros(128, 16)
    assert any(k.startswith(pg + "language_model.model.") for k in state)
    other.load_weights(state)
    obs, noise = observation(), noise_for(policy)
    torch.testing.assert_close(other.predict_action_chunk(obs, noise=noise), policy.predict_action_chunk(obs, noise=noise))


def test_missing_weights_are_named(tokenizer_dir):
    policy = build("pi0", tokenizer_dir)
    state = dict(policy.state_dict())
    del state["model.state_proj.weight"]
    with pytest.raises(ValueError, match="state_proj"):
        policy.load_weights(state)


# ------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("kind", TYPES)
def test_loss_is_finite_and_decreases(kind, tokenizer_dir):
    policy = build(kind, tokenizer_dir)
    batch = make_batch(FEATURES, horizon=4, batch=2)
    batch["task"] = ["pick up the cube", "open the drawer"]
    g = torch.Generator().manual_seed(0)
    noise, time = torch.randn(2, 4, 4, generator=g), torch.tensor([0.3, 0.8])
    optimizer = torch.optim.AdamW(policy.optimizer_param_groups(), lr=3e-3)
    losses = []
    policy.train()
    for _ in range(12):
        loss, logs = policy.compute_loss(policy.normalizer(batch), noise=noise, time=time)
        assert torch.isfinite(loss) and logs["loss"] == pytest.approx(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    loss, _ = policy(batch)  # the public path: raw batch, sampled noise and time
    assert torch.isfinite(loss)


def test_padded_steps_do_not_count(tokenizer_dir):
    policy = build("pi0", tokenizer_dir)
    batch = policy.normalizer(make_batch(FEATURES, horizon=4, batch=2))  # sample 0's last two steps are padding
    batch["task"] = "stack"
    assert batch["action_is_pad"].sum() == 2
    noise, time = torch.randn(2, 4, 4), torch.tensor([0.5, 0.5])
    loss, _ = policy.compute_loss(batch, noise=noise, time=time)
    prefix, state = policy._prefix(batch, "stack")
    actions = torch.nn.functional.pad(batch["action"], (0, 2))
    per_element = policy.model.loss(prefix, state, actions, noise, time)[:, :, :2]  # (B, T, action_dim)
    torch.testing.assert_close(loss, per_element[~batch["action_is_pad"]].mean())
    assert not torch.isclose(loss, per_element.mean())


def test_gradient_checkpointing_gives_the_same_gradients(tokenizer_dir):
    plain = build("pi05", tokenizer_dir, seed=3)
    ckpt = build("pi05", tokenizer_dir, seed=3, gradient_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    batch = make_batch(FEATURES, horizon=4, batch=2)
    batch["task"] = "push"
    noise, time = torch.randn(2, 4, 4), torch.tensor([0.2, 0.9])
    grads = []
    for policy in (plain, ckpt):
        policy.train()
        loss, _ = policy.compute_loss(policy.normalizer(batch), noise=noise, time=time)
        loss.backward()
        grads.append(policy.model.paligemma_with_expert.gemma_expert.model.layers[0].self_attn.q_proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_frozen_parts_get_no_gradient(tokenizer_dir):
    policy = build("pi0", tokenizer_dir, train_expert_only=True)
    policy.train()
    assert not policy.model.paligemma_with_expert.paligemma.training
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and not any(".paligemma." in n for n in trainable)
    assert "model.action_in_proj.weight" in trainable


# -------------------------------------------------------------------------------------------- acting
@pytest.mark.parametrize("kind", TYPES)
def test_kv_cache_gives_the_chunk_of_recomputing_the_prefix(kind, tokenizer_dir):
    policy = build(kind, tokenizer_dir)
    obs, noise = observation(), noise_for(policy)
    cached = policy.predict_action_chunk(obs, noise=noise)
    full = policy.predict_action_chunk(obs, noise=noise, use_kv_cache=False)
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", TYPES)
def test_instruction_and_camera_change_the_chunk(kind, tokenizer_dir):
    policy = build(kind, tokenizer_dir)
    obs, noise = observation(), noise_for(policy)
    base = policy.predict_action_chunk(obs, noise=noise)
    other_task = policy.predict_action_chunk({**obs, "task": ["close the drawer", "open_the drawer"]}, noise=noise)
    assert not torch.allclose(other_task[0], base[0]) and torch.allclose(other_task[1], base[1], atol=1e-6)
    cam = dict(obs)
    cam["observation.images.front"] = obs["observation.images.front"].flip(-1)
    assert not torch.allclose(policy.predict_action_chunk(cam, noise=noise), base)


def test_select_action_queues_the_chunk(tokenizer_dir):
    policy = build("pi05", tokenizer_dir, n_action_steps=3)
    obs = observation(batch=1)
    policy.reset()
    actions = [policy.select_action(obs) for _ in range(4)]
    assert all(a.shape == (1, 2) for a in actions)


def test_pi05_state_is_in_the_prompt(tokenizer_dir):
    policy = build("pi05", tokenizer_dir)
    state = torch.tensor([[-1.0, 0.0, 0.999], [-0.5, 0.25, 2.0]])
    prompts = policy.prompts(["pick_up the cube\n", "x"], state, 2)
    # bins of [-1, 1] in 256 steps, state padded to max_state_dim (4) with zeros
    assert prompts[0] == "Task: pick up the cube, State: 0 128 255 128;\nAction: "
    assert prompts[1] == "Task: x, State: 64 160 255 128;\nAction: "
    ids, mask = policy.tokenize(prompts)
    moved = policy.prompts(["pick_up the cube\n", "x"], state + 0.1, 2)
    assert moved[0] != prompts[0]
    ids2, _ = policy.tokenize(moved)
    assert not torch.equal(ids2[0][mask[0]], ids[0][mask[0]])
    assert torch.equal(discretize_state(torch.tensor([-1.5, -1.0, 1.0])), torch.tensor([-1, 0, 255]))


def test_pi0_prompt_is_the_task_with_a_newline(tokenizer_dir):
    policy = build("pi0", tokenizer_dir)
    assert policy.prompts("stack the cups", None, 2) == ["stack the cups\n"] * 2
    ids, mask = policy.tokenize(policy.prompts("ab", None, 1))
    tok = policy.tokenizer
    assert ids.shape == (1, 24) and mask[0].sum() == 4  # <bos> a b \n, then padding
    assert ids[0, 0] == tok.bos_token_id and ids[0, 4] == tok.pad_token_id


def test_state_changes_the_pi0_chunk_through_its_token(tokenizer_dir):
    policy = build("pi0", tokenizer_dir)
    obs, noise = observation(), noise_for(policy)
    moved = dict(obs, **{"observation.state": obs["observation.state"] + 1.0})
    assert not torch.allclose(policy.predict_action_chunk(moved, noise=noise), policy.predict_action_chunk(obs, noise=noise))


# ------------------------------------------------------------------------------------------- errors
def test_clear_errors(tokenizer_dir):
    policy = build("pi0", tokenizer_dir)
    obs = observation()
    with pytest.raises(KeyError, match="task"):
        policy.predict_action_chunk({k: v for k, v in obs.items() if k != "task"})
    with pytest.raises(ValueError, match="'task' must be a str or 2 str"):
        policy.predict_action_chunk({**obs, "task": ["only one"]})
    with pytest.raises(ValueError, match=r"noise has shape \(2, 4, 2\); expected \(2, 4, 4\)"):
        policy.predict_action_chunk(obs, noise=torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="max_state_dim is 2"):
        Policy.build(tiny_config("pi0", tokenizer_dir, max_state_dim=2), FEATURES, make_stats(FEATURES))
    with pytest.raises(ValueError, match="vlm_overrides has unknown key"):
        PI0Config(vlm_overrides={"widht": 3})
    with pytest.raises(ValueError, match="head_dim must match"):
        PI0Config(expert_overrides={"head_dim": 128})
    with pytest.raises(ValueError, match="paligemma_variant='gemma_7b'"):
        PI0Config(paligemma_variant="gemma_7b")
    bad = build("pi0", str(Path(tokenizer_dir) / "missing"))
    with pytest.raises(FileNotFoundError, match="cannot load the tokenizer"):
        bad.predict_action_chunk(obs)


def test_config_json_round_trip(tokenizer_dir, tmp_path):
    policy = build("pi05", tokenizer_dir)
    data = policy.config_dict()
    json.dumps(data)
    again = PI05Config.from_dict(data)
    assert again.vlm_shape == policy.config.vlm_shape and again.image_resolution == (32, 32)


@pytest.mark.parametrize("stream", ["vlm", "expert"])
def test_layer_loop_equals_transformers_gemma(stream, tokenizer_dir):
    """The joint layer loop, run on one stream with a causal mask, is transformers' GemmaModel (whose
    forward scales inputs_embeds by sqrt(width) itself, hence the division)."""
    from robokit.policies.flow_matching import prefix_lm_mask

    policy = build("pi0", tokenizer_dir)
    pwe = policy.model.paligemma_with_expert
    gemma = pwe.vlm if stream == "vlm" else pwe.expert
    width = gemma.config.hidden_size
    x = torch.randn(2, 7, width, generator=torch.Generator().manual_seed(0))
    pads = torch.ones(2, 7, dtype=torch.bool)
    causal = prefix_lm_mask(pads, torch.ones(7, dtype=torch.bool))
    positions = torch.arange(7).expand(2, 7)
    inputs = (x, None) if stream == "vlm" else (None, x)
    out = next(o for o in pwe(*inputs, causal, positions)[:2] if o is not None)
    with torch.no_grad():
        ref = gemma(inputs_embeds=x / width**0.5, position_ids=positions).last_hidden_state
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_bf16_inference_is_close_to_fp32(tokenizer_dir):
    policy = build("pi0", tokenizer_dir)
    obs, noise = observation(), noise_for(policy)
    fp32 = policy.predict_action_chunk(obs, noise=noise)
    policy.to(torch.bfloat16)
    bf16 = policy.predict_action_chunk(obs, noise=noise)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("kind", TYPES)
def test_cuda_graph_chunk_equals_eager(kind, tokenizer_dir):
    policy = build(kind, tokenizer_dir).to("cuda")
    obs = {k: v.to("cuda") if isinstance(v, torch.Tensor) else v for k, v in observation().items()}
    noise = noise_for(policy).cuda()
    graphed = policy.predict_action_chunk(obs, noise=noise)
    again = policy.predict_action_chunk({**obs, "task": ["stack", "push"]}, noise=noise)  # a replay, new inputs
    policy.config = dataclasses.replace(policy.config, cuda_graphs=False)
    torch.testing.assert_close(graphed, policy.predict_action_chunk(obs, noise=noise), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, policy.predict_action_chunk({**obs, "task": ["stack", "push"]}, noise=noise),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", TYPES)
def test_lerobot_folder_loads(kind, tokenizer_dir, tmp_path):
    """A folder laid out as LeRobot 0.4.4 saves π0 / π0.5: its config.json (written by LeRobot's own
    PI0Config / PI05Config), weights as safetensors.save_model leaves them (one name of each tied pair),
    and the normalizer's stats in a processor step file."""
    from safetensors.torch import save_file

    policy = build(kind, tokenizer_dir)
    folder = tmp_path / "lerobot"
    folder.mkdir()
    (folder / "config.json").write_text((DATA / f"lerobot_{kind}_config.json").read_text())
    weights = {k: v.contiguous() for k, v in policy.state_dict().items() if k.startswith("model.")}
    del weights["model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"]
    save_file(weights, str(folder / "model.safetensors"))
    stats = {f"{name}.{stat}": torch.as_tensor(value) for name, d in make_stats(FEATURES).items()
             if name in ("observation.state", "action") for stat, value in d.items()}
    save_file(stats, str(folder / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    steps = [{"registry_name": "normalizer_processor", "state_file": "policy_preprocessor_step_3_normalizer_processor.safetensors"}]
    (folder / "policy_preprocessor.json").write_text(json.dumps({"name": "policy_preprocessor", "steps": steps}))
    tiny = tiny_config(kind, tokenizer_dir)
    overrides = {k: getattr(tiny, k) for k in ("vlm_overrides", "expert_overrides", "vision_overrides", "vocab_size",
                                                "tokenizer_name")}
    loaded = Policy.from_pretrained(folder, **overrides)
    assert type(loaded) is type(policy) and loaded.config.chunk_size == 4 and loaded.config.image_resolution == (32, 32)
    obs, noise = observation(), noise_for(policy)
    torch.testing.assert_close(loaded.predict_action_chunk(obs, noise=noise), policy.predict_action_chunk(obs, noise=noise))


def _fsdp_worker(rank: int, port: int, tokenizer: str, out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        policy, batch, noise, time = _fsdp_case(tokenizer)
        for unit in reversed(policy.fsdp_units()):
            fully_shard(unit)
        fully_shard(policy)
        half = slice(2 * rank, 2 * rank + 2)
        part = {k: v[half] for k, v in batch.items()}  # tensors and the list of task strings alike
        loss, _ = policy(part, noise=noise[half], time=time[half])  # through forward, as the trainer calls it
        loss.backward()
        grads = {n: p.grad.full_tensor() for n, p in policy.named_parameters() if p.grad is not None}
        total = loss.detach().clone()
        dist.all_reduce(total)
        if rank == 0:
            torch.save({"loss": total / 2, "grads": grads}, out)
    finally:
        dist.destroy_process_group()


def _fsdp_case(tokenizer: str):
    policy = build("pi0", tokenizer, seed=5)
    policy.train()
    batch = make_batch(FEATURES, horizon=4, batch=4, seed=2)
    batch["action_is_pad"] = torch.zeros(4, 4, dtype=torch.bool)  # equal halves: the mean of means is the mean
    batch["task"] = ["pick", "place the cup", "open", "close it"]
    g = torch.Generator().manual_seed(9)
    return policy, batch, torch.randn(4, 4, 4, generator=g), torch.rand(4, generator=g)


@pytest.mark.slow
def test_fsdp_two_processes_give_the_one_process_gradients(tokenizer_dir, tmp_path):
    """fully_shard over `fsdp_units()` (the modules whose forward the joint loop calls), 2 gloo processes
    with half the batch each: the same loss and gradients as one process on the whole batch."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "rank0.pt"
    mp.start_processes(_fsdp_worker, args=(port, tokenizer_dir, str(out)), nprocs=2, start_method="spawn")
    sharded = torch.load(out, weights_only=True)
    policy, batch, noise, time = _fsdp_case(tokenizer_dir)
    loss, _ = policy(batch, noise=noise, time=time)
    loss.backward()
    torch.testing.assert_close(sharded["loss"], loss.detach())
    grads = {n: p.grad for n, p in policy.named_parameters() if p.grad is not None}
    assert sorted(sharded["grads"]) == sorted(grads)
    for name, grad in grads.items():
        torch.testing.assert_close(sharded["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_robokit_train_runs_pi05_and_its_checkpoint_acts(tokenizer_dir, tmp_path):
    """The trainer end to end: a real dataset on disk with task strings, --gradient-checkpointing, a saved
    checkpoint (with its tokenizer) that loads and acts."""
    from robokit.training import TrainConfig, train
    from tests.training.conftest import write_camera_dataset

    dataset = write_camera_dataset(tmp_path / "dataset")
    tiny = tiny_config("pi05", tokenizer_dir)
    args = tuple(f"{k}={json.dumps(getattr(tiny, k))}" for k in ("vlm_overrides", "expert_overrides", "vision_overrides"))
    args += ("vocab_size=128", f"tokenizer_name={tokenizer_dir}", "tokenizer_max_length=64", "image_resolution=[32,32]",
             "chunk_size=4", "n_action_steps=4", "max_state_dim=8", "max_action_dim=8")
    result = train(TrainConfig(dataset=str(dataset), output_dir=str(tmp_path / "run"), policy="pi05", policy_args=args,
                               steps=2, batch_size=4, num_workers=0, log_every=1, plot=False, save_every=2,
                               gradient_checkpointing=True))
    assert len(result.losses) == 2 and all(math.isfinite(x) for x in result.losses)
    policy = Policy.from_pretrained(tmp_path / "run")
    obs = {k: v[None].float() for k, v in RobotDataset(str(dataset))[0].items()
           if isinstance(v, torch.Tensor) and k.startswith("observation.")}
    chunk = policy.predict_action_chunk({**obs, "task": "task number 0"})
    assert chunk.shape == (1, 4, policy.action_dim) and torch.isfinite(chunk).all()


@pytest.mark.parametrize("kind", TYPES)
def test_training_loss_equals_lerobots(kind):
    """LeRobot 0.4.4's own PI0Pytorch / PI05Pytorch.forward on a tiny model (weights, inputs and per-element
    losses in tests/policies/data/lerobot_*_tiny_reference.safetensors, written by pi0_lerobot_reference.py,
    which says which patched-transformers behaviours it shims): robokit's prefix, suffix, joint layers and
    loss on the same weights and inputs give the same losses."""
    from safetensors.torch import load_file

    ref = load_file(str(DATA / f"lerobot_{kind}_tiny_reference.safetensors"))
    heads = {"depth": 2, "num_heads": 8, "num_kv_heads": 1, "head_dim": 4}
    config = (PI0Config if kind == "pi0" else PI05Config)(
        vlm_overrides={**heads, "width": 32, "mlp_dim": 64}, expert_overrides={**heads, "width": 16, "mlp_dim": 32},
        vision_overrides={"hidden_size": 16, "intermediate_size": 4304, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "patch_size": 8},
        image_resolution=(32, 32), chunk_size=4, n_action_steps=4, max_state_dim=4, max_action_dim=4,
    )
    model = PI0Model(config).eval()
    own = model.state_dict()
    weights = {}
    for key, value in ref.items():
        if key.startswith("model."):
            key = key.removeprefix("model.")
            if value.shape != own[key].shape:  # the vocabulary rows the file left out (ids >= 128)
                value = torch.cat([value, value.new_zeros(own[key].shape[0] - value.shape[0], *value.shape[1:])])
            weights[key] = value
    assert sorted(weights) == sorted(own)
    model.load_state_dict(weights)
    b = ref["input.tokens"].shape[0]
    with torch.no_grad():
        prefix = model.embed_prefix([ref["input.image"]], [torch.ones(b, dtype=torch.bool)], ref["input.tokens"],
                                    ref["input.token_mask"])
        state = ref["input.state"] if kind == "pi0" else None
        losses = model.loss(prefix, state, ref["input.actions"], ref["input.noise"], ref["input.time"])
    torch.testing.assert_close(losses, ref["output.losses"], rtol=1e-5, atol=1e-5)
