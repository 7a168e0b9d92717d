"""Write LeRobot 0.4.4's π0 / π0.5 parameter names and shapes (full published size) to text files.

Run with the LeRobot reference venv (shared/tools/lerobot-reference/make-venv), not robokit's:

    /tmp/venv-lerobot/bin/python tests/policies/data/pi0_lerobot_names.py tests/policies/data

LeRobot's PI0Pytorch refuses to build without its patched transformers (a `transformers.models.siglip.check`
module); the check is satisfied here by a stand-in module, and the model is built on the meta device (no
memory, no weights). Unpatched transformers gives every Gemma RMSNorm a `weight`; LeRobot's patched
GemmaRMSNorm (openpi's transformers_replace) gives the adaRMS norms of π0.5's action expert a
`dense` Linear(width, 3 * width) with bias and no `weight` instead (LeRobot's `_fix_pytorch_state_dict_keys`
names the same change: ".weight -> .dense.weight + .dense.bias"). That substitution is applied below, for
the expert's input_layernorm, post_attention_layernorm and final norm only.
"""

import re
import sys
import types
from pathlib import Path

import torch
from transformers.models import siglip

check = types.ModuleType("transformers.models.siglip.check")
check.check_whether_transformers_replace_is_installed_correctly = lambda: True
sys.modules["transformers.models.siglip.check"] = check
siglip.check = check

from lerobot.policies.pi0.configuration_pi0 import PI0Config
from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch
from lerobot.policies.pi05.configuration_pi05 import PI05Config
from lerobot.policies.pi05.modeling_pi05 import PI05Pytorch

ADARMS = re.compile(r"^(model\.paligemma_with_expert\.gemma_expert\.model\.(?:layers\.\d+\.(?:input_layernorm|post_attention_layernorm)|norm))\.weight$")


def names(model: torch.nn.Module, adarms: bool) -> list[str]:
    lines = []
    for key, tensor in model.state_dict(keep_vars=True).items():
        key = f"model.{key}"
        match = ADARMS.match(key)
        if adarms and match:
            width = tensor.shape[0]
            lines.append(f"{match.group(1)}.dense.bias\t({3 * width},)")
            lines.append(f"{match.group(1)}.dense.weight\t({3 * width}, {width})")
            continue
        lines.append(f"{key}\t{tuple(tensor.shape)}")
    return sorted(lines)


def main(out: Path) -> None:
    for name, config_cls, model_cls, adarms in (("pi0", PI0Config, PI0Pytorch, False),
                                                ("pi05", PI05Config, PI05Pytorch, True)):
        with torch.device("meta"):
            model = model_cls(config_cls(device="cpu"))
        lines = names(model, adarms)
        header = (f"# LeRobot 0.4.4 {model_cls.__name__}({config_cls.__name__}()) on the meta device: "
                  f"{len(lines)} state_dict entries, published default size\n# columns: key<TAB>shape\n")
        (out / f"lerobot_{name}_state_dict.txt").write_text(header + "\n".join(lines) + "\n")
        print(name, len(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
