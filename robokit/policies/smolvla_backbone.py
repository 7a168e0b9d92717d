"""SmolVLM backbone folders written offline: a `config.json` for `transformers`' SmolVLM classes
plus a byte-level tokenizer, so that SmolVLA can be built and tested without any download.

    write_backbone("tiny_vlm/")                        # a 2-layer text model, 2-layer vision tower
    write_backbone("smolvlm2_500m/", **SMOLVLM2_500M)  # the published sizes (random weights: timing)
    make_config("smolvla", vlm_model_name="tiny_vlm")

The tokenizer maps each UTF-8 byte to one token (a byte-level BPE without merges: token id =
the byte's rank in the GPT-2 byte alphabet) and puts SmolVLM's special tokens after the 256
bytes. It is the tokenizer of LeRobot's tiny SmolVLA fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

# Special tokens of SmolVLM's tokenizer, in the order they get ids 256, 257, ...
SPECIAL_TOKENS = ("<|im_start|>", "<end_of_utterance>", "<|endoftext|>", "<pad>", "<fake_token_around_image>",
                  "<image>", "<global-img>", "<video>")
BYTE_VOCAB = 256 + len(SPECIAL_TOKENS)

# SmolVLM2-500M-Video-Instruct (the backbone of the published SmolVLA), from its config.json.
SMOLVLM2_500M = {
    "text_hidden": 960, "text_intermediate": 2560, "text_layers": 32, "heads": 15, "kv_heads": 5, "head_dim": 64,
    "vocab_size": 49280, "vision_hidden": 768, "vision_intermediate": 3072, "vision_layers": 12, "vision_heads": 12,
    "image_size": 512, "patch_size": 16, "scale_factor": 4,
}


def write_backbone(
    folder: str | os.PathLike, *, text_hidden: int = 64, text_intermediate: int = 128, text_layers: int = 2,
    heads: int = 4, kv_heads: int = 2, head_dim: int = 16, vocab_size: int = BYTE_VOCAB, vision_hidden: int = 32,
    vision_intermediate: int = 64, vision_layers: int = 2, vision_heads: int = 2, image_size: int = 64,
    patch_size: int = 16, scale_factor: int = 2,
) -> Path:
    """Write a SmolVLM `config.json` of these sizes and the byte tokenizer into `folder`; returns it."""
    if vocab_size < BYTE_VOCAB:
        raise ValueError(f"write_backbone: vocab_size={vocab_size} is smaller than the tokenizer's {BYTE_VOCAB}")
    if (image_size // patch_size) % scale_factor:
        raise ValueError(f"write_backbone: {image_size // patch_size} patches per side do not divide by "
                         f"scale_factor={scale_factor}")
    from transformers import SmolVLMConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = {tok: 256 + i for i, tok in enumerate(SPECIAL_TOKENS)}
    config = SmolVLMConfig(
        text_config={
            "model_type": "llama", "hidden_size": text_hidden, "intermediate_size": text_intermediate,
            "num_hidden_layers": text_layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
            "head_dim": head_dim, "vocab_size": vocab_size, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0, "hidden_act": "silu", "pad_token_id": ids["<pad>"], "attention_bias": False,
            "mlp_bias": False,
        },
        vision_config={
            "hidden_size": vision_hidden, "intermediate_size": vision_intermediate, "num_hidden_layers": vision_layers,
            "num_attention_heads": vision_heads, "image_size": image_size, "patch_size": patch_size,
        },
        scale_factor=scale_factor, vocab_size=vocab_size, image_token_id=ids["<image>"], tie_word_embeddings=False,
    )
    config.save_pretrained(folder)
    write_byte_tokenizer(folder)
    return folder


def write_byte_tokenizer(folder: str | os.PathLike) -> Path:
    """Save the byte-level tokenizer (256 byte tokens, then SmolVLM's special tokens) into `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # the 256 printable stand-ins of the bytes
    tokenizer = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
        unk_token="<|endoftext|>", pad_token="<pad>",
        additional_special_tokens=["<fake_token_around_image>", "<image>", "<global-img>", "<video>"],
    )
    fast.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[4:])})
    folder = Path(folder)
    fast.save_pretrained(folder)
    got = {tok: fast.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    want = {tok: 256 + i for i, tok in enumerate(SPECIAL_TOKENS)}
    if got != want:  # the ids are part of the format: embeddings are indexed by them
        raise RuntimeError(f"write_byte_tokenizer: special token ids {got}, expected {want}")
    return folder

