"""Write LeRobot 0.4.4's π0 / π0.5 training losses for a tiny model, with its weights and inputs.

Run with the LeRobot reference venv, not robokit's:

    /tmp/venv-lerobot/bin/python tests/policies/data/pi0_lerobot_reference.py tests/policies/data

LeRobot's PI0Pytorch needs openpi's patched transformers, which no registry serves. The few patched
behaviours that LeRobot's *training* path (`PI0Pytorch.forward`: embed_prefix, embed_suffix and the joint
`compute_layer_complete` loop) relies on are supplied here as small shims, written from openpi's
`transformers_replace` source as published:
- `GemmaRMSNorm.forward(x, cond=None)` returns `(normed, gate)`; with no `cond` it is the stock Gemma
  RMSNorm and the gate is None;
- `modeling_gemma._gated_residual(x, y, gate)` is `x + y` (gate None) or `x + y * gate`;
- `get_image_features` returns the projector's output without transformers' division by sqrt(width);
- π0.5's expert norms are adaRMS: `dense` = Linear(width, 3 * width) -> scale, shift, gate;
  `normed * (1 + scale) + shift` (this math is the shim's, so it is not an independent check; LeRobot's
  wiring around it is: where the condition comes from, where the gates apply, the final norm).
LeRobot's inference path (`sample_actions`) also runs the patched `GemmaModel.forward`, which is not shimmed:
no reference is written for it (robokit's KV-cached chunk is checked against its own joint pass instead).

The tiny model: Gemma width 32 (VLM) / 16 (expert), 2 layers, 8 heads (LeRobot's joint loop assumes 8) of
dim 4, 1 kv head; SigLIP width 16, 1 layer, patch 8 at 32x32 (its projector replaced by one to width 32:
LeRobot fixes it at 2048). LeRobot fixes the vocabulary at 257152 and the
SigLIP MLP at 4304: the file keeps the first 128 rows of each vocabulary-sized matrix (the tokens use
ids < 128; robokit's test fills the rest with zeros) so that it stays small.
"""

import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PaliGemmaConfig
from transformers.models import siglip
from transformers.models.gemma import modeling_gemma
from transformers.models.paligemma import modeling_paligemma

check = types.ModuleType("transformers.models.siglip.check")
check.check_whether_transformers_replace_is_installed_correctly = lambda: True
sys.modules["transformers.models.siglip.check"] = check
siglip.check = check

from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi05 import modeling_pi05
from lerobot.policies.pi05.configuration_pi05 import PI05Config

KEEP_ROWS = 128
VLM = modeling_pi0.GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=4)
EXPERT = modeling_pi0.GemmaConfig(width=16, depth=2, mlp_dim=32, num_heads=8, num_kv_heads=1, head_dim=4)
SIGLIP = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "patch_size": 8}


# ---------------------------------------------------------------------------------- the patched behaviours
def rms_forward(self, x, cond=None):
    out = self._norm(x.float()) * (1.0 + self.weight.float())
    return out.type_as(x), None


def gated_residual(x, y, gate):
    return x + y if gate is None else x + y * gate


def image_features(self, pixel_values):
    return self.multi_modal_projector(self.vision_tower(pixel_values).last_hidden_state)


class AdaRMS(torch.nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.dense = torch.nn.Linear(dim, 3 * dim)

    def forward(self, x, cond=None):
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        scale, shift, gate = self.dense(cond).unsqueeze(1).chunk(3, dim=-1)
        return (normed * (1 + scale.float()) + shift.float()).to(x.dtype), gate.to(x.dtype)


def tiny_paligemma_config(**kwargs):
    config = PaliGemmaConfig(**kwargs)
    for key, value in SIGLIP.items():
        setattr(config.vision_config, key, value)
    return config


modeling_gemma.GemmaRMSNorm.forward = rms_forward
modeling_gemma._gated_residual = gated_residual
modeling_paligemma.PaliGemmaModel.get_image_features = image_features
for module in (modeling_pi0, modeling_pi05):
    module.get_gemma_config = lambda variant: VLM if variant == "gemma_2b" else EXPERT
    module.CONFIG_MAPPING = {"paligemma": tiny_paligemma_config, "gemma": modeling_pi0.CONFIG_MAPPING["gemma"]}


def main(out: Path) -> None:
    g = torch.Generator().manual_seed(0)
    b, chunk, dim, length = 2, 4, 4, 12
    inputs = {
        "image": torch.rand(b, 3, 32, 32, generator=g) * 2 - 1,
        "tokens": torch.randint(4, KEEP_ROWS, (b, length), generator=g),
        "token_mask": torch.arange(length)[None, :] < torch.tensor([[length], [7]]),
        "state": torch.randn(b, dim, generator=g),
        "actions": torch.randn(b, chunk, dim, generator=g),
        "noise": torch.randn(b, chunk, dim, generator=g),
        "time": torch.tensor([0.3, 0.85]),
    }
    for name, config_cls, model_cls in (("pi0", PI0Config, modeling_pi0.PI0Pytorch),
                                        ("pi05", PI05Config, modeling_pi05.PI05Pytorch)):
        torch.manual_seed(1)
        config = config_cls(device="cpu", chunk_size=chunk, n_action_steps=chunk, max_state_dim=dim,
                            max_action_dim=dim, image_resolution=(32, 32))
        model = model_cls(config)
        # LeRobot sets the projector's output to 2048 (Gemma 2B's width); the tiny VLM is 32 wide.
        model.paligemma_with_expert.paligemma.model.multi_modal_projector.linear = torch.nn.Linear(16, VLM.width)
        if name == "pi05":
            expert = model.paligemma_with_expert.gemma_expert.model
            for layer in expert.layers:
                layer.input_layernorm, layer.post_attention_layernorm = AdaRMS(EXPERT.width), AdaRMS(EXPERT.width)
            expert.norm = AdaRMS(EXPERT.width)
        with torch.no_grad():
            for p in model.parameters():  # random everywhere (adaRMS, the norms' zero init) so that all weights matter
                p.normal_(0.0, 0.2, generator=g)
        model.eval()
        args = [[inputs["image"]], [torch.ones(b, dtype=torch.bool)], inputs["tokens"], inputs["token_mask"]]
        if name == "pi0":
            args.append(inputs["state"])
        with torch.no_grad():
            losses = model.forward(*args, inputs["actions"], noise=inputs["noise"], time=inputs["time"])
        tensors = {f"input.{k}": v.contiguous() for k, v in inputs.items()}
        tensors["output.losses"] = losses
        for key, value in model.state_dict().items():
            if value.shape[0] == 257152:
                value = value[:KEEP_ROWS]
            tensors[f"model.{key}"] = value.contiguous().clone()
        save_file(tensors, str(out / f"lerobot_{name}_tiny_reference.safetensors"),
                  metadata={"written_by": "tests/policies/data/pi0_lerobot_reference.py", "lerobot": "0.4.4",
                            "kept_rows": str(KEEP_ROWS)})
        print(name, tuple(losses.shape), float(losses.mean()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
