"""Arrays <-> protobuf `Tensor` messages: dtype + shape + raw bytes, or a JPEG file for camera frames.

    msg = encode_tensor(np.zeros((480, 640, 3), np.uint8), jpeg_quality=90)   # JPEG
    msg = encode_tensor(np.arange(14, dtype=np.float32))                       # raw bytes
    array = decode_tensor(msg, name="observation.state")

Decoding checks that the byte count matches dtype x shape and that a JPEG decodes to the
declared shape; a bad message raises `TensorDecodeError` naming the tensor. Nothing here
unpickles: raw bytes become an array through `np.frombuffer` only.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from robokit.serving import robokit_serving_pb2 as pb

_TO_PROTO: dict[np.dtype, int] = {
    np.dtype(np.float32): pb.FLOAT32,
    np.dtype(np.float64): pb.FLOAT64,
    np.dtype(np.float16): pb.FLOAT16,
    np.dtype(np.uint8): pb.UINT8,
    np.dtype(np.int8): pb.INT8,
    np.dtype(np.int16): pb.INT16,
    np.dtype(np.int32): pb.INT32,
    np.dtype(np.int64): pb.INT64,
    np.dtype(np.bool_): pb.BOOL,
}
_FROM_PROTO: dict[int, np.dtype] = {v: k.newbyteorder("<") for k, v in _TO_PROTO.items()}
MAX_DIMS = 8


class TensorDecodeError(ValueError):
    """A Tensor message that cannot be turned into the array it declares."""


def encode_tensor(array, jpeg_quality: int | None = None) -> pb.Tensor:
    """An array (numpy or torch) as a Tensor message; `jpeg_quality` (1-100) JPEG-encodes a uint8 (H, W, 3) frame."""
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype not in _TO_PROTO:
        raise TypeError(f"encode_tensor: dtype {array.dtype} is not supported; expected one of "
                        f"{sorted(str(d) for d in _TO_PROTO)}")
    if jpeg_quality is not None:
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"encode_tensor: JPEG needs a uint8 (height, width, 3) frame, got {array.dtype} {array.shape}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"encode_tensor: jpeg_quality={jpeg_quality}, expected 1..100")
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="JPEG", quality=int(jpeg_quality))
        return pb.Tensor(dtype=pb.UINT8, shape=list(array.shape), data=buffer.getvalue(), encoding=pb.JPEG)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return pb.Tensor(dtype=_TO_PROTO[array.dtype], shape=list(array.shape),
                     data=np.ascontiguousarray(little).tobytes(), encoding=pb.RAW)


def decode_tensor(msg: pb.Tensor, name: str = "tensor") -> np.ndarray:
    """The array a Tensor message carries (read-only for RAW tensors: it views the message's bytes)."""
    if msg.dtype not in _FROM_PROTO:
        raise TensorDecodeError(f"{name}: dtype {msg.dtype} is not one of {sorted(pb.DType.keys())[1:]}")
    shape = tuple(int(s) for s in msg.shape)
    if len(shape) > MAX_DIMS or any(s < 0 for s in shape):
        raise TensorDecodeError(f"{name}: shape {list(shape)} is invalid (expected <= {MAX_DIMS} non-negative sizes)")
    dtype = _FROM_PROTO[msg.dtype]
    if msg.encoding == pb.JPEG:
        return _decode_jpeg(msg.data, shape, dtype, name)
    if msg.encoding != pb.RAW:
        raise TensorDecodeError(f"{name}: encoding {msg.encoding} is not RAW (0) or JPEG (1)")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a hostile shape cannot overflow to a match
    if len(msg.data) != expected:
        raise TensorDecodeError(f"{name}: {len(msg.data)} bytes for dtype {dtype.name} shape {list(shape)}; "
                                f"expected {expected}")
    return np.frombuffer(msg.data, dtype=dtype).reshape(shape)


def _decode_jpeg(data: bytes, shape: tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3:
        raise TensorDecodeError(f"{name}: a JPEG tensor must be uint8 (height, width, 3); declared {dtype.name} {list(shape)}")
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        if image.format != "JPEG":
            raise TensorDecodeError(f"{name}: encoding is JPEG but the data is {image.format or 'not an image'}")
        if (image.height, image.width) != shape[:2]:  # before decoding: no allocation for a lying header
            raise TensorDecodeError(f"{name}: JPEG decodes to {[image.height, image.width, 3]}, the message "
                                    f"declares {list(shape)}")
        array = np.asarray(image.convert("RGB"))
    except TensorDecodeError:
        raise
    except Exception as err:  # PIL raises several types for corrupt data
        raise TensorDecodeError(f"{name}: JPEG data does not decode ({type(err).__name__}: {err})") from None
    if array.shape != shape:
        raise TensorDecodeError(f"{name}: JPEG decodes to {list(array.shape)}, the message declares {list(shape)}")
    return array


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="robokit-jpeg")
    return _POOL


def map_tensors(fn, items: dict, parallel: bool):
    """`{name: fn(name, value)}`, on a small thread pool when `parallel` (JPEG coding releases the GIL)."""
    if not parallel or len(items) < 2:
        return {name: fn(name, value) for name, value in items.items()}
    futures = {name: _pool().submit(fn, name, value) for name, value in items.items()}
    return {name: future.result() for name, future in futures.items()}
