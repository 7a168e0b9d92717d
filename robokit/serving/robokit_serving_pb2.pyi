from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    FLOAT32: _ClassVar[DType]
    FLOAT64: _ClassVar[DType]
    FLOAT16: _ClassVar[DType]
    UINT8: _ClassVar[DType]
    INT8: _ClassVar[DType]
    INT16: _ClassVar[DType]
    INT32: _ClassVar[DType]
    INT64: _ClassVar[DType]
    BOOL: _ClassVar[DType]

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RAW: _ClassVar[Encoding]
    JPEG: _ClassVar[Encoding]
DTYPE_UNSPECIFIED: DType
FLOAT32: DType
FLOAT64: DType
FLOAT16: DType
UINT8: DType
INT8: DType
INT16: DType
INT32: DType
INT64: DType
BOOL: DType
RAW: Encoding
JPEG: Encoding

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data", "encoding")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    encoding: Encoding
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., encoding: _Optional[_Union[Encoding, str]] = ...) -> None: ...

class PolicySetup(_message.Message):
    __slots__ = ("policy_path", "policy_type", "features_json", "actions_per_chunk", "device", "revision", "client_name")
    POLICY_PATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_TYPE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    policy_path: str
    policy_type: str
    features_json: str
    actions_per_chunk: int
    device: str
    revision: str
    client_name: str
    def __init__(self, policy_path: _Optional[str] = ..., policy_type: _Optional[str] = ..., features_json: _Optional[str] = ..., actions_per_chunk: _Optional[int] = ..., device: _Optional[str] = ..., revision: _Optional[str] = ..., client_name: _Optional[str] = ...) -> None: ...

class SetupReply(_message.Message):
    __slots__ = ("session_id", "policy_type", "chunk_size", "action_dim", "input_features_json", "load_ms", "from_cache", "n_obs_steps")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    ACTION_DIM_FIELD_NUMBER: _ClassVar[int]
    INPUT_FEATURES_JSON_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    FROM_CACHE_FIELD_NUMBER: _ClassVar[int]
    N_OBS_STEPS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    policy_type: str
    chunk_size: int
    action_dim: int
    input_features_json: str
    load_ms: float
    from_cache: bool
    n_obs_steps: int
    def __init__(self, session_id: _Optional[str] = ..., policy_type: _Optional[str] = ..., chunk_size: _Optional[int] = ..., action_dim: _Optional[int] = ..., input_features_json: _Optional[str] = ..., load_ms: _Optional[float] = ..., from_cache: _Optional[bool] = ..., n_obs_steps: _Optional[int] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("timestep", "timestamp", "must_process", "tensors", "task")
    class TensorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MUST_PROCESS_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    timestep: int
    timestamp: float
    must_process: bool
    tensors: _containers.MessageMap[str, Tensor]
    task: str
    def __init__(self, timestep: _Optional[int] = ..., timestamp: _Optional[float] = ..., must_process: _Optional[bool] = ..., tensors: _Optional[_Mapping[str, Tensor]] = ..., task: _Optional[str] = ...) -> None: ...

class ObservationPart(_message.Message):
    __slots__ = ("data", "index", "total")
    DATA_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    index: int
    total: int
    def __init__(self, data: _Optional[bytes] = ..., index: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class ObservationAck(_message.Message):
    __slots__ = ("status", "timestep", "replaced")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        QUEUED: _ClassVar[ObservationAck.Status]
        SKIPPED: _ClassVar[ObservationAck.Status]
    QUEUED: ObservationAck.Status
    SKIPPED: ObservationAck.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    status: ObservationAck.Status
    timestep: int
    replaced: int
    def __init__(self, status: _Optional[_Union[ObservationAck.Status, str]] = ..., timestep: _Optional[int] = ..., replaced: _Optional[int] = ...) -> None: ...

class ServerTiming(_message.Message):
    __slots__ = ("queue_ms", "preprocess_ms", "inference_ms", "postprocess_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., preprocess_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., postprocess_ms: _Optional[float] = ...) -> None: ...

class ActionChunk(_message.Message):
    __slots__ = ("observation_timestep", "timesteps", "actions", "timing", "observation_timestamp")
    OBSERVATION_TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    TIMESTEPS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    observation_timestep: int
    timesteps: _containers.RepeatedScalarFieldContainer[int]
    actions: Tensor
    timing: ServerTiming
    observation_timestamp: float
    def __init__(self, observation_timestep: _Optional[int] = ..., timesteps: _Optional[_Iterable[int]] = ..., actions: _Optional[_Union[Tensor, _Mapping]] = ..., timing: _Optional[_Union[ServerTiming, _Mapping]] = ..., observation_timestamp: _Optional[float] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("status", "version", "sessions", "loaded_policies", "uptime_s")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LOADED_POLICIES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    status: str
    version: str
    sessions: int
    loaded_policies: _containers.RepeatedScalarFieldContainer[str]
    uptime_s: float
    def __init__(self, status: _Optional[str] = ..., version: _Optional[str] = ..., sessions: _Optional[int] = ..., loaded_policies: _Optional[_Iterable[str]] = ..., uptime_s: _Optional[float] = ...) -> None: ...

class StreamActionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
