"""Feature declarations `{name: {"dtype", "shape", "names"}}`: validation, frame checks, parquet schema."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

# Per-frame bookkeeping columns every dataset has (shape [1], names null).
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
CAMERA_DTYPES = ("image", "video")
NUMERIC_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "float16", "float32", "float64")
ALL_DTYPES = (*NUMERIC_DTYPES, *CAMERA_DTYPES, "string")


class FeatureError(ValueError):
    """A frame or a feature declaration does not match what the dataset expects."""


def validate_features(features: dict[str, dict]) -> dict[str, dict]:
    """Check user-declared features and return them normalized (shape as list) with the defaults added."""
    if not isinstance(features, dict) or not features:
        raise FeatureError(f"features must be a non-empty dict {{name: {{dtype, shape, names}}}}, got {features!r}")
    out: dict[str, dict] = {}
    for name, spec in features.items():
        if name in DEFAULT_FEATURES:
            continue  # accepted and replaced by the canonical declaration
        if "/" in name:
            raise FeatureError(f"feature name {name!r} must not contain '/'")
        if not isinstance(spec, dict) or "dtype" not in spec or "shape" not in spec:
            raise FeatureError(f"feature {name!r} must be a dict with 'dtype' and 'shape', got {spec!r}")
        dtype = spec["dtype"]
        if dtype not in ALL_DTYPES:
            raise FeatureError(f"feature {name!r} has dtype {dtype!r}; expected one of {', '.join(ALL_DTYPES)}")
        shape = [int(s) for s in spec["shape"]]
        if any(s <= 0 for s in shape):
            raise FeatureError(f"feature {name!r} has shape {shape}; every dimension must be > 0")
        if dtype in CAMERA_DTYPES and (len(shape) != 3 or shape[2] not in (1, 3, 4)):
            raise FeatureError(f"camera feature {name!r} has shape {shape}; expected [height, width, channels]")
        names = spec.get("names")
        if dtype in CAMERA_DTYPES and names is None:
            names = ["height", "width", "channels"]
        normalized = {"dtype": dtype, "shape": shape, "names": names}
        if isinstance(spec.get("info"), dict) and spec["info"].get("allow_nonfinite"):
            raise FeatureError(
                f"feature {name!r} declares info.allow_nonfinite, which robokit no longer supports: every episode's "
                "stats (min, max, mean, ...) need finite values; record NaN/inf as a separate bool feature instead"
            )
        if "info" in spec:
            normalized["info"] = spec["info"]
        out[name] = normalized
    out.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
    return out


def camera_keys(features: dict) -> list[str]:
    return [k for k, v in features.items() if v["dtype"] in CAMERA_DTYPES]


def video_keys(features: dict) -> list[str]:
    return [k for k, v in features.items() if v["dtype"] == "video"]


def image_keys(features: dict) -> list[str]:
    return [k for k, v in features.items() if v["dtype"] == "image"]


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"type {type(value).__name__}"


def check_frame_value(name: str, value: Any, spec: dict) -> Any:
    """Return `value` converted to what the writer stores, or raise FeatureError naming the problem.

    Numbers: any array-like of the declared shape whose kind matches (float for float, int for int,
    bool for bool), finite, and within the declared dtype's range (a float64 1e39 does not fit a
    float32, a 300 does not fit a uint8); precision is cast to the declared dtype. Cameras: uint8
    (H, W, C) or (C, H, W), or float in [0, 1]. Strings: str.
    """
    dtype, shape = spec["dtype"], tuple(spec["shape"])
    if dtype == "string":
        if not isinstance(value, str):
            raise FeatureError(f"add_frame: {name!r} has {_describe(value)}, the dataset declares a string")
        return value
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if dtype in CAMERA_DTYPES:
        return _check_camera(name, array, shape)
    if array.dtype.kind not in "biuf":
        raise FeatureError(f"add_frame: {name!r} has {_describe(array)}, the dataset declares {dtype} {list(shape)}")
    if array.shape != shape and not (shape == (1,) and array.shape == ()):
        raise FeatureError(f"add_frame: {name!r} has shape {tuple(array.shape)}, the dataset declares {shape}")
    target = np.dtype(dtype)
    if not _same_kind(array.dtype, target):
        raise FeatureError(
            f"add_frame: {name!r} has dtype {array.dtype}, the dataset declares {dtype} "
            f"(cast it explicitly if the conversion is intended)"
        )
    _check_representable(name, array, target)
    return array.astype(target, copy=False).reshape(shape)


def _check_representable(name: str, array: np.ndarray, target: np.dtype) -> None:
    """Raise FeatureError unless every value is finite and fits `target` (casting would not change it)."""
    flat = array.reshape(-1)
    if array.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            raise FeatureError(
                f"add_frame: {name!r} has the non-finite value {flat[bad[0]]} at flat position {int(bad[0])} "
                f"(non-finite at positions {bad[:8].tolist()}, shape {tuple(array.shape)}); "
                "a dataset stores finite numbers only (its stats need them)"
            )
    if target.kind == "f" and array.dtype.itemsize > target.itemsize:
        limit = float(np.finfo(target).max)
        bad = np.flatnonzero(np.abs(flat) > limit)
    elif target.kind in "iu" and array.dtype != target:
        info = np.iinfo(target)
        bad = np.flatnonzero((flat < info.min) | (flat > info.max))
        limit = None
    else:
        return
    if bad.size:
        allowed = f"+-{limit:.4g}" if limit is not None else f"{np.iinfo(target).min}..{np.iinfo(target).max}"
        raise FeatureError(
            f"add_frame: {name!r} has the value {flat[bad[0]]} at flat position {int(bad[0])}, outside the "
            f"range of its declared dtype {target} ({allowed}); it cannot be stored without changing it"
        )


def _same_kind(got: np.dtype, want: np.dtype) -> bool:
    if want.kind == "f":
        return got.kind == "f"
    if want.kind in "iu":
        return got.kind in "iu"
    if want.kind == "b":
        return got.kind == "b"
    return got == want


def _check_camera(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w, c = shape
    if array.shape == (c, h, w) and array.shape != (h, w, c):
        array = np.moveaxis(array, 0, -1)
    if array.shape != (h, w, c):
        raise FeatureError(
            f"add_frame: {name!r} has shape {tuple(array.shape)}, the dataset declares {list(shape)} "
            f"(height, width, channels; channels-first is accepted too)"
        )
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise FeatureError(f"add_frame: {name!r} is a float image with values outside [0, 1]; expected uint8 or floats in [0, 1]")
        return np.ascontiguousarray((array * 255).round().astype(np.uint8))
    raise FeatureError(f"add_frame: {name!r} has dtype {array.dtype}; a camera frame must be uint8 or float in [0, 1]")


def arrow_schema(features: dict):
    """The parquet schema of data files: every non-video feature; vectors as fixed-size lists."""
    import pyarrow as pa

    fields = []
    for name, spec in features.items():
        if spec["dtype"] == "video":
            continue
        fields.append(pa.field(name, arrow_type(spec)))
    hf = {"info": {"features": {f.name: _hf_feature(features[f.name]) for f in fields}}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})


def arrow_type(spec: dict):
    import pyarrow as pa

    dtype, shape = spec["dtype"], list(spec["shape"])
    if dtype == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    if dtype == "string":
        return pa.string()
    item = pa.from_numpy_dtype(np.dtype(dtype))
    if shape == [1]:
        return item
    for dim in reversed(shape):
        item = pa.list_(item, dim)
    return item


def _hf_feature(spec: dict) -> dict:
    """The Hugging Face `datasets` feature description that LeRobot's reader understands."""
    dtype, shape = spec["dtype"], list(spec["shape"])
    if dtype == "image":
        return {"_type": "Image"}
    value = {"dtype": dtype, "_type": "Value"}
    if shape == [1]:
        return value
    if len(shape) == 1:
        return {"feature": value, "length": shape[0], "_type": "List"}
    return {"shape": shape, "dtype": dtype, "_type": f"Array{len(shape)}D"}


def stored_shape_problem(arrow_type, spec: dict) -> str | None:
    """Why a parquet column of `arrow_type` cannot hold feature `spec` (its dtype kind or shape), or None.

    Fixed-size lists carry their dimensions, which must be the declared shape (shape [1] may be a
    plain value); variable-size lists must nest as deep as the shape has dimensions."""
    import pyarrow as pa

    dtype = spec["dtype"]
    if dtype in ("image", "string", "video"):
        return None
    shape = [int(s) for s in spec["shape"]]
    dims: list[int | None] = []
    inner = arrow_type
    while pa.types.is_fixed_size_list(inner) or pa.types.is_list(inner) or pa.types.is_large_list(inner):
        dims.append(inner.list_size if pa.types.is_fixed_size_list(inner) else None)
        inner = inner.value_type
    if not (pa.types.is_integer(inner) or pa.types.is_floating(inner) or pa.types.is_boolean(inner)):
        return f"holds {arrow_type}, not numbers"
    if shape == [1] and dims in ([], [1], [None]):
        return None
    stored = f"shape [{', '.join('?' if d is None else str(d) for d in dims)}]" if dims else "one value"
    if len(dims) != len(shape) or any(d is not None and d != s for d, s in zip(dims, shape)):
        return f"stores {stored} per frame ({arrow_type})"
    return None
