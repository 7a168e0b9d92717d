"""CPU inference through oneDNN, with each weight prepared once instead of at every call.

Two things make the policies' CPU inference slow through plain `F.linear` / `nn.Conv2d`:

- torch's CPU `F.linear` goes to MKL's GEMM, which on AMD processors runs a slower code path, and
  for the few rows of a batch-1 diffusion step (4-16 rows against up to 84 MB of weights) streams
  the weights at a third of what the memory allows. oneDNN's matmul on a weight packed once into
  its blocked layout does not: on the 2-core AVX-512 development host (1 thread) 7.6 -> 17.8 GB/s
  at 4 rows, 4.5 -> 9.8 GB/s at 16, and 85 -> 105 GFLOP/s on large products.
- ResNet's convolution, frozen batch norm, ReLU and residual add are four passes over each feature
  map. With the batch norm folded into the convolution's weights and bias, and the ReLU / add
  fused into oneDNN's convolution on a packed weight, they are one (ResNet-18 at 480x640, 1
  thread: 259 -> 221 ms fp32, 152 -> 121 ms bf16).

The function is the same up to floating-point rounding (the order of summation and, for folding,
`conv(x, W * s) + b` instead of `conv(x, W) * s + b`): the LeRobot parity tests hold at 1e-5.

The fast path runs only where it is exact to use a frozen copy: on the CPU, float32 or bfloat16,
without autograd (`torch.no_grad` / `torch.inference_mode`) and without autocast. Everything else
(training, CUDA, other dtypes, code traced by `torch.compile`) takes the plain torch call. A
prepared weight is cached per parameter and re-made when the parameter changes (its version
counter: an optimizer step, `load_state_dict`, `copy_`; or new data from `module.to`), so it is
never stale. The copies cost memory equal to the weights they replace (about +1 GB for the default
263 M-parameter Diffusion U-Net): `clear_cache(module)` frees them (`Policy.train()` does), and
`ROBOKIT_ONEDNN=0` in the environment or `set_enabled(False)` turns the fast path off.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

_enabled = os.environ.get("ROBOKIT_ONEDNN", "1").strip().lower() not in ("0", "false", "no", "off")
# parameter -> ((version, data pointer, dtype) of it and its dependencies when made, {key: prepared})
_cache: WeakIdKeyDictionary = WeakIdKeyDictionary()
_bf16_ok: bool | None = None


def set_enabled(enabled: bool) -> None:
    """Turn the oneDNN fast path on or off for this process (the default comes from ROBOKIT_ONEDNN)."""
    global _enabled
    _enabled = bool(enabled)


def is_enabled() -> bool:
    return _enabled


def _bf16_supported() -> bool:
    global _bf16_ok
    if _bf16_ok is None:
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        _bf16_ok = bool(check and check())
    return _bf16_ok


def active(x: Tensor, *weights: Tensor) -> bool:
    """Whether the fast path applies to input `x` with these weights (see the module docstring)."""
    if not _enabled or x.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if torch.compiler.is_compiling():  # torch.compile traces the plain ops and makes its own kernels
        return False
    if x.dtype not in (torch.float32, torch.bfloat16) or any(w.dtype != x.dtype for w in weights):
        return False
    if x.dtype == torch.bfloat16 and not _bf16_supported():
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights)):
        return False
    return not torch.is_autocast_enabled("cpu")


def _prepared(owner: Tensor, key: tuple, make: Callable[[], Any], depends: tuple[Tensor, ...] = ()) -> Any:
    """What `make()` built from `owner` (and `depends`) under `key`, cached; rebuilt after `owner` or one
    of `depends` changed: in place (the version counter) or by a new `.data` (`module.to(dtype)` keeps
    the Parameter object). A change drops every entry of `owner`."""
    version = tuple((t._version, t.data_ptr(), t.dtype) for t in (owner, *depends))
    entry = _cache.get(owner)
    if entry is None or entry[0] != version:
        entry = (version, {})
        _cache[owner] = entry
    prepared = entry[1].get(key)
    if prepared is None:
        with torch.inference_mode():
            prepared = entry[1][key] = make()
    return prepared


def clear_cache(module: nn.Module | None = None) -> None:
    """Free the prepared weights of `module`'s parameters (of every module when None)."""
    if module is None:
        _cache.clear()
        return
    for p in module.parameters():
        _cache.pop(p, None)


def _owner(weight: Tensor) -> Tensor:
    return weight if weight._base is None else weight._base


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, relu: bool = False) -> Tensor:
    """`F.linear(x, weight, bias)` (then ReLU if `relu`); on the fast path, oneDNN's matmul on a
    packed copy of `weight`, with the ReLU fused into it.

    `weight` may be a view of a parameter (a slice of attention's in_proj_weight, a reshaped conv
    weight, a transpose): each view is packed once under its offset, shape and strides."""
    rows = x.numel() // max(1, x.shape[-1])
    # one row: MKL's gemv is faster; a wrong input size: torch's own error
    if (
        rows < 2
        or x.shape[-1] != weight.shape[-1]
        or not active(x, weight, *(() if bias is None else (bias,)))
    ):
        out = F.linear(x, weight, bias)
        return F.relu(out) if relu else out
    key = ("linear", weight.storage_offset(), tuple(weight.shape), tuple(weight.stride()))
    packed = _prepared(
        _owner(weight), key, lambda: torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)
    )
    x2d = x.reshape(rows, x.shape[-1])
    out = torch.ops.mkldnn._linear_pointwise(x2d, packed, bias, "relu" if relu else "none", [], "")
    return out.reshape(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """`nn.Linear` (same parameters and function) that takes the oneDNN fast path in CPU inference."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def forward_relu(self, x: Tensor) -> Tensor:
        """`relu(self(x))`, fused on the fast path."""
        return linear(x, self.weight, self.bias, relu=True)


def plain(conv: nn.Conv2d) -> bool:
    """Zero padding given as numbers: what `conv2d` supports."""
    return conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters and function) that takes the oneDNN fast path in CPU inference."""

    def forward(self, x: Tensor) -> Tensor:
        if plain(self) and active(x, self.weight, *(() if self.bias is None else (self.bias,))):
            return conv2d(x, self)
        return super().forward(x)


def conv2d(
    x: Tensor,
    conv: nn.Conv2d,
    norm: nn.Module | None = None,
    relu: bool = False,
    residual: Tensor | None = None,
) -> Tensor:
    """`relu(norm(conv(x)) + residual)` as one oneDNN convolution on a packed weight (each step optional).

    `norm` is a per-channel affine map with an `affine() -> (scale, shift)` method (a frozen batch
    norm): `scale` is folded into the weights and `shift` becomes the bias. Only for plain
    convolutions (`plain(conv)`) on the fast path; the caller checks `active` first. The prepared
    weight depends on the norm's tensors and the conv's bias too, so new statistics re-fold."""
    if not plain(conv):
        raise ValueError(f"onednn.conv2d: padding {conv.padding!r} / {conv.padding_mode!r} is not supported")
    weight = conv.weight
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    depends = tuple(t for t in (conv.bias,) if t is not None)
    if norm is not None:
        depends += (*norm.buffers(), *norm.parameters())

    def fold() -> tuple[Tensor, Tensor | None]:
        w, bias = weight.float(), None if conv.bias is None else conv.bias.float()
        if norm is not None:
            scale, shift = (t.float() for t in norm.affine())
            w = w * scale[:, None, None, None]
            bias = shift if bias is None else shift + bias * scale
        packed = torch.ops.mkldnn._reorder_convolution_weight(
            w.to(weight.dtype).contiguous(), *geometry, list(x.shape)
        )
        return packed, None if bias is None else bias.to(weight.dtype)

    packed, bias = _prepared(weight, ("conv2d",), fold, depends)
    x = x.contiguous(memory_format=torch.channels_last)
    unary = "relu" if relu else "none"
    if residual is None:
        return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, *geometry, unary, [], "")
    residual = residual.contiguous(memory_format=torch.channels_last)
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, residual, packed, bias, *geometry, "add", 1.0, unary, [], ""
    )
