"""Tensors on the wire, aggregation functions on hand-built chunks, the action queue."""

import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from robokit.serving import robokit_serving_pb2 as pb
from robokit.serving.action_queue import ActionQueue
from robokit.serving.aggregation import make_aggregate
from robokit.serving.engine import ObservationData
from robokit.serving.tensors import TensorDecodeError, decode_tensor, encode_tensor
from robokit.serving.transport import observation_message, split_parts


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "uint8", "int8", "int16", "int32", "int64", "bool"])
def test_tensor_round_trip_every_dtype(dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    msg = encode_tensor(array)
    assert msg.encoding == pb.RAW and list(msg.shape) == [2, 3, 4]
    assert msg.data == array.astype(array.dtype.newbyteorder("<")).tobytes()  # raw little-endian bytes
    out = decode_tensor(pb.Tensor.FromString(msg.SerializeToString()))
    assert out.dtype == array.dtype and np.array_equal(out, array)


def test_jpeg_frames_round_trip_close_to_the_original():
    y, x = np.mgrid[0:48, 0:64]
    frame = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)
    msg = encode_tensor(frame, jpeg_quality=95)
    assert msg.encoding == pb.JPEG and msg.data[:2] == b"\xff\xd8" and len(msg.data) < frame.nbytes
    out = decode_tensor(msg, "cam")
    assert out.shape == frame.shape and np.abs(out.astype(int) - frame).mean() < 3


def test_bad_tensors_name_the_problem():
    msg = encode_tensor(np.zeros(14, np.float32))
    msg.data = msg.data[:-4]
    with pytest.raises(TensorDecodeError, match=r"observation.state: 52 bytes .* expected 56"):
        decode_tensor(msg, "observation.state")
    jpeg = pb.Tensor(dtype=pb.UINT8, shape=[4, 4, 3], data=b"not a jpeg", encoding=pb.JPEG)
    with pytest.raises(TensorDecodeError, match="cam: JPEG data does not decode"):
        decode_tensor(jpeg, "cam")
    wrong_shape = encode_tensor(np.zeros((8, 8, 3), np.uint8), jpeg_quality=80)
    wrong_shape.shape[:] = [8, 9, 3]
    with pytest.raises(TensorDecodeError, match=r"decodes to \[8, 8, 3\], the message declares \[8, 9, 3\]"):
        decode_tensor(wrong_shape, "cam")
    with pytest.raises(TensorDecodeError, match="dtype 0"):
        decode_tensor(pb.Tensor(dtype=pb.DTYPE_UNSPECIFIED, shape=[1], data=b"\0"), "x")


def test_observation_carries_raw_bytes_and_nothing_pickled():
    state = np.linspace(-1, 1, 14).astype(np.float32)
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    obs = ObservationData(timestep=7, tensors={"observation.state": state, "observation.images.top": frame},
                          timestamp=1.5, must_process=True)
    data = observation_message(obs).SerializeToString()
    assert state.tobytes() in data and frame.tobytes() in data  # the arrays' own bytes, not a pickle
    assert not data.startswith(b"\x80")  # no pickle protocol header
    parts = split_parts(data, 4096)
    assert [p.index for p in parts] == list(range(len(parts))) and {p.total for p in parts} == {len(parts)}
    back = pb.Observation.FromString(b"".join(p.data for p in parts))
    assert back.timestep == 7 and back.must_process and np.array_equal(decode_tensor(back.tensors["observation.state"]), state)
    # no module of robokit.serving touches pickle
    sources = Path(__file__).parents[2].joinpath("robokit", "serving").glob("*.py")
    unsafe = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill|cloudpickle)\b|pickle\.loads?\(|torch\.load\(", re.MULTILINE)
    assert not [p.name for p in sources if unsafe.search(p.read_text())]
    with pytest.raises(Exception):
        pickle.loads(data)


def chunk(t0, values):
    values = np.asarray(values, dtype=np.float32).reshape(len(values), 1)
    return t0 + np.arange(len(values)), values


def merged(name, chunks, **params):
    queue = ActionQueue(make_aggregate(name, **params))
    for timesteps, actions in chunks:
        queue.merge(timesteps, actions, current_timestep=0)
    return [float(queue.pop(t)[0]) for t in range(len(queue))]


# Three chunks from observations at timesteps 0, 1, 2; each predicts 4 actions.
CHUNKS = [chunk(0, [0, 10, 20, 30]), chunk(1, [11, 21, 31, 41]), chunk(2, [22, 32, 42, 52])]


def test_latest_only_keeps_the_newest_prediction():
    assert merged("latest_only", CHUNKS) == [0, 11, 22, 32, 42, 52]


def test_average_is_the_mean_of_every_prediction():
    assert merged("average", CHUNKS) == pytest.approx([0, 10.5, 21, 31, 41.5, 52])


def test_weighted_average_and_conservative():
    # t=2: ((20 -> 0.3*20+0.7*21=20.7) -> 0.3*20.7+0.7*22 = 21.61)
    assert merged("weighted_average", CHUNKS, alpha=0.7)[:3] == pytest.approx([0, 0.3 * 10 + 0.7 * 11, 21.61])
    assert merged("weighted_average", CHUNKS, alpha=1.0) == merged("latest_only", CHUNKS)
    assert merged("conservative", CHUNKS)[:3] == pytest.approx([0, 0.7 * 10 + 0.3 * 11, 0.7 * (0.7 * 20 + 0.3 * 21) + 0.3 * 22])


def test_temporal_ensemble_matches_act_weights():
    m = 0.5
    out = merged("temporal_ensemble", CHUNKS, m=m)
    w = [math.exp(-m * i) for i in range(3)]  # i = 0 is the oldest prediction
    assert out[2] == pytest.approx((w[0] * 20 + w[1] * 21 + w[2] * 22) / sum(w))
    assert out[1] == pytest.approx((w[0] * 10 + w[1] * 11) / (w[0] + w[1]))
    assert merged("temporal_ensemble", CHUNKS, m=0.0) == pytest.approx(merged("average", CHUNKS))


def test_user_callables_with_two_or_three_arguments():
    assert merged(lambda old, new: np.maximum(old, new), CHUNKS) == [0, 11, 22, 32, 42, 52]
    # a 3-argument callable sees how many predictions `old` already merges: t=2 -> 20 + 1 = 21, then 21 + 2 = 23
    queue = ActionQueue(make_aggregate(lambda old, new, n: old + n))
    for timesteps, actions in CHUNKS:
        queue.merge(timesteps, actions, 0)
    assert float(queue.pop(2)[0]) == 23


def test_queue_drops_stale_actions_and_counts_length():
    queue = ActionQueue()
    assert queue.merge(*chunk(0, [0, 1, 2, 3, 4]), current_timestep=0) == 0
    assert queue.pop(0)[0] == 0 and queue.pop(1)[0] == 1
    assert queue.merge(*chunk(1, [9, 9, 9, 9]), current_timestep=2) == 1  # timestep 1 was already executed
    assert queue.length_from(2) == 3 and queue.pop(2)[0] == 9
    assert queue.pop(10) is None and len(queue) == 0


def test_unknown_aggregation_suggests_a_name():
    with pytest.raises(ValueError, match="Did you mean 'average'"):
        make_aggregate("avrage")
    with pytest.raises(ValueError, match="alpha=1.5"):
        make_aggregate("weighted_average", alpha=1.5)
