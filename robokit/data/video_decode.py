"""Decode video frames at exact timestamps, with torchcodec or PyAV.

``decode_frames(path, timestamps)`` returns the frames presented at those times as a uint8
(N, 3, H, W) tensor, or raises :class:`FrameTimestampError` when no frame lies within
``tolerance_s`` of a request: a neighbouring frame is never returned in its place.

Speed: each process keeps a few open decoders (LRU, keyed by file identity so that a replaced
file is reopened). A DataLoader worker is a forked process: it drops what it inherited and opens
its own handles. Within a call, frames are decoded in time order, each at most once; the
decoder decodes forward from where it is when no keyframe lies between its position and the
next frame wanted, and seeks to the keyframe before that frame otherwise.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

logger = logging.getLogger(__name__)

BACKENDS = ("torchcodec", "pyav")
BACKEND_ENV = "ROBOKIT_VIDEO_BACKEND"
THREADS_ENV = "ROBOKIT_VIDEO_DECODE_THREADS"
MAX_OPEN_DECODERS = 8
"""Decoders kept open per process (one per video file)."""
FORWARD_DECODE_MAX_WASTE = 2
"""Decode forward (not seek) when at most this many unwanted frames lie before the next wanted one
beyond the last keyframe; decoding a frame at GOP 2 costs about what a seek and decoder flush cost."""


class FrameTimestampError(ValueError):
    """No frame of the video is presented within the tolerance of a requested timestamp."""

    def __init__(
        self, path, requested_s: float, closest_s: float | None, tolerance_s: float, detail: str = ""
    ):
        self.path = str(path)
        self.requested_s = requested_s
        self.closest_s = closest_s
        self.tolerance_s = tolerance_s
        if closest_s is None:
            found = "the video has no frame there"
        else:
            found = f"the closest frame is at {closest_s:.6f} s ({abs(closest_s - requested_s):.6f} s away)"
        msg = (
            f"{path}: no frame at timestamp {requested_s:.6f} s within tolerance_s={tolerance_s:g}; {found}"
            f"{'; ' + detail if detail else ''}"
        )
        super().__init__(msg)


class VideoDecodeError(RuntimeError):
    """A video file is missing, truncated or corrupt; the message names the file."""


class VideoFileNotFoundError(VideoDecodeError, FileNotFoundError):
    """The video file does not exist (also a FileNotFoundError)."""


# --------------------------------------------------------------------------- backend choice

_torchcodec_status: tuple[bool, str] | None = None


def torchcodec_available() -> tuple[bool, str]:
    """(True, "") when torchcodec imports with its FFmpeg libraries, else (False, reason)."""
    global _torchcodec_status
    if _torchcodec_status is None:
        try:
            from torchcodec.decoders import VideoDecoder  # noqa: F401

            _torchcodec_status = (True, "")
        except Exception as exc:  # noqa: BLE001 - ImportError, or RuntimeError without FFmpeg's libraries
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            _torchcodec_status = (False, f"{type(exc).__name__}: {first_line}")
    return _torchcodec_status


def default_backend() -> str:
    """``$ROBOKIT_VIDEO_BACKEND`` if set, else "torchcodec" when it loads, else "pyav"."""
    env = os.environ.get(BACKEND_ENV)
    if env:
        return resolve_backend(env, source=f"${BACKEND_ENV}")
    return "torchcodec" if torchcodec_available()[0] else "pyav"


def resolve_backend(backend: str | None, source: str = "backend") -> str:
    if backend is None:
        return default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"{source}={backend!r} is not a video decoding backend; expected one of {BACKENDS}")
    if backend == "torchcodec":
        ok, reason = torchcodec_available()
        if not ok:
            raise RuntimeError(
                f"{source}='torchcodec' but torchcodec does not load ({reason}); install it with "
                "`pip install -c constraints.txt torchcodec` and the system FFmpeg "
                "(`apt-get install -y ffmpeg`), "
                "or use backend='pyav'"
            )
    return backend


def _decoder_threads(backend: str) -> int:
    """Threads per decoder: ``$ROBOKIT_VIDEO_DECODE_THREADS``, else 1 in a DataLoader worker (the
    workers already fill the cores) and for torchcodec (its FFmpeg frame threads delay output, which
    measured slower for random access), else 2 (PyAV, dav1d with one frame in flight)."""
    env = os.environ.get(THREADS_ENV)
    if env:
        try:
            threads = int(env)
        except ValueError:
            threads = -1
        if threads < 0:
            raise ValueError(f"${THREADS_ENV}={env!r}: expected a thread count >= 0 (0 = FFmpeg decides)")
        return threads
    if backend == "torchcodec" or torch.utils.data.get_worker_info() is not None:
        return 1
    return min(2, os.cpu_count() or 1)


# --------------------------------------------------------------------------- PyAV reader


class _PyAVReader:
    """One open file with a decoder that remembers where it is."""

    def __init__(self, path: str):
        import av

        self.path = path
        try:
            self.container = av.open(path)
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(f"cannot open video {path}: {exc}") from exc
        if not self.container.streams.video:
            self.container.close()
            raise VideoDecodeError(f"{path} has no video stream")
        self.stream = self.container.streams.video[0]
        cc = self.stream.codec_context
        cc.thread_count = _decoder_threads("pyav")
        cc.thread_type = "AUTO"
        if cc.codec.name == "libdav1d":
            # Frame threading delays output by several frames, which are then decoded for nothing
            # after a seek; one frame in flight keeps random access cheap, tile threads still help.
            cc.options = {"max_frame_delay": "1"}
        self.time_base: Fraction = self.stream.time_base
        self.start_pts = self.stream.start_time or 0
        self.end_s = None
        if self.stream.duration is not None:
            self.end_s = float((self.start_pts + self.stream.duration) * self.time_base)
        self.height = cc.height
        self.width = cc.width
        self._frames = None  # iterator over decoded frames, or None when a seek is due
        self._sought_pts = self.start_pts
        self._last = None  # (time_s, av.VideoFrame) last frame taken from the iterator
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._index = self.stream.index_entries

    def _keyframe_before(self, t: float) -> float | None:
        """Time of the last keyframe at or before ``t`` from the container's index (None if unknown).

        mp4 index timestamps are decode times; without reordered frames (robokit's and LeRobot's
        files) they are the presentation times.
        """
        i = self._index.search_timestamp(math.floor(t / self.time_base), backward=True)
        if i < 0:
            return None
        return float(self._index[i].timestamp * self.time_base)

    def close(self) -> None:
        self._frames = None
        self._last = None
        self.container.close()

    # -- decoding

    def read(self, times: list[float], tol: float) -> list[np.ndarray]:
        """(H, W, 3) uint8 frames for ascending distinct ``times``."""
        return [self._read_one(t, tol) for t in times]

    def _read_one(self, t: float, tol: float) -> np.ndarray:
        if self._last is not None and abs(self._last[0] - t) <= tol:
            frame = self._last[1]  # already decoded (e.g. the end of the previous window)
        else:
            if not self._can_decode_forward(t, tol):
                # Seek to the keyframe at or before t + tol: when the wanted frame is itself a
                # keyframe, t - tol would land one GOP earlier and decode it for nothing.
                self._seek(t + tol)
            frame = self._decode_until(t, tol)
        # A fresh array each time: the caller owns what it gets (converting costs ~0.1 ms at 480x640).
        # One reformatter per reader: PyAV's per-frame default builds a new SwsContext (and thread
        # pool) for every frame, which costs more than decoding a smooth frame.
        return self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()

    def _can_decode_forward(self, t: float, tol: float) -> bool:
        """Whether decoding on from the current position beats seeking to reach frame ``t``."""
        if self._frames is None or self._last is None or self._last[0] >= t - tol:
            return False
        position = self._last[0]
        key = self._keyframe_before(t + tol)  # where a seek would start decoding
        if key is None:
            return False
        if key <= position + tol:
            return True  # no keyframe in between: decoding on does strictly less work than a seek
        rate = self.stream.average_rate or self.stream.guessed_rate
        wasted = (key - position) * float(rate) - 1 if rate else math.inf
        return wasted <= FORWARD_DECODE_MAX_WASTE

    def _seek(self, t: float) -> None:
        import av

        target = max(math.floor(t / self.time_base), self.start_pts)
        try:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(f"cannot seek in video {self.path} to {t:.6f} s: {exc}") from exc
        self._frames = self.container.decode(self.stream)
        self._last = None
        self._sought_pts = target

    def _decode_until(self, t: float, tol: float):
        import av

        previous = self._last[0] if self._last is not None else None
        retried = False
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                self._frames = None
                if self.end_s is not None and t + tol < self.end_s - tol:
                    raise VideoDecodeError(
                        f"video {self.path} ends before {t:.6f} s although its header says it lasts "
                        f"{self.end_s:.6f} s: the file is truncated or corrupt"
                    ) from None
                raise FrameTimestampError(self.path, t, previous, tol, "past the end of the video") from None
            except av.error.FFmpegError as exc:
                self._frames = None
                raise VideoDecodeError(f"cannot decode video {self.path} near {t:.6f} s: {exc}") from exc
            if frame.pts is None:
                continue
            ft = float(frame.pts * self.time_base)
            first_after_seek = self._last is None
            self._last = (ft, frame)
            if ft < t - tol:
                previous = ft
                continue
            if ft <= t + tol:
                return frame
            if first_after_seek and not retried and self._sought_pts > self.start_pts:
                # The demuxer landed after the wanted frame (possible with reordered frames): go back
                # one second and decode forward from there.
                retried = True
                self._seek(t - tol - 1.0)
                continue
            closest = ft if previous is None or abs(ft - t) < abs(previous - t) else previous
            raise FrameTimestampError(self.path, t, closest, tol)


# --------------------------------------------------------------------------- torchcodec reader


class _TorchCodecReader:
    def __init__(self, path: str):
        from torchcodec.decoders import VideoDecoder

        self.path = path
        try:
            self.decoder = VideoDecoder(
                path,
                seek_mode="approximate",  # the mp4 index suffices; "exact" scans the whole file on open
                dimension_order="NCHW",
                num_ffmpeg_threads=_decoder_threads("torchcodec"),
            )
        except Exception as exc:
            raise VideoDecodeError(f"cannot open video {path}: {exc}") from exc
        md = self.decoder.metadata
        self.height, self.width = md.height, md.width
        self.begin_s = float(md.begin_stream_seconds or 0.0)
        self.end_s = float(md.end_stream_seconds) if md.end_stream_seconds is not None else math.inf
        self.frame_s = 1.0 / float(md.average_fps) if md.average_fps else 0.0

    def close(self) -> None:
        self.decoder = None

    def read(self, times: list[float], tol: float) -> torch.Tensor:
        for t in times:
            if t + tol < self.begin_s or t - tol >= self.end_s:
                closest = self.begin_s if t < self.begin_s else self.end_s - self.frame_s
                raise FrameTimestampError(self.path, t, closest, tol, "outside the video")
        # The frame played at t + tol is the last one presented at or before it; it is the wanted one
        # iff it is not earlier than t - tol (frames need not be equally spaced for this to hold).
        query = [min(t + tol, self.end_s - 1e-9) for t in times]
        try:
            batch = self.decoder.get_frames_played_at(seconds=query)
        except Exception as exc:
            raise VideoDecodeError(f"cannot decode video {self.path} at {times[:4]}...: {exc}") from exc
        pts = batch.pts_seconds.tolist()
        for t, p, d in zip(times, pts, batch.duration_seconds.tolist()):
            if abs(p - t) > tol:
                nxt = p + d
                closest = nxt if abs(nxt - t) < abs(p - t) and nxt < self.end_s else p
                raise FrameTimestampError(self.path, t, closest, tol)
        return batch.data


# --------------------------------------------------------------------------- per-process cache


class _Entry:
    """An open reader with the lock that serializes its use; ``closed`` once evicted."""

    __slots__ = ("closed", "lock", "reader")

    def __init__(self, reader):
        self.reader = reader
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:  # waits for a thread that is decoding with it
            if self.closed:
                return
            self.closed = True
            try:
                self.reader.close()
            except Exception:
                logger.debug("closing the decoder of %s failed", self.reader.path, exc_info=True)


class _ReaderCache:
    """LRU of open readers; forgotten (not shared) in a forked child."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.entries: OrderedDict = OrderedDict()
        self._orphans: list = []

    def drop_inherited(self) -> None:
        # The child's copies of the parent's handles share file offsets with the parent: never use
        # them. Keeping them referenced (not closed) leaves the parent's FFmpeg state untouched.
        self._orphans.extend(self.entries.values())
        self.entries = OrderedDict()
        self.lock = threading.Lock()
        self.pid = os.getpid()

    def get(self, backend: str, path: str) -> _Entry:
        if os.getpid() != self.pid:
            self.drop_inherited()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise VideoFileNotFoundError(f"video file {path} does not exist") from None
        except OSError as exc:
            raise VideoDecodeError(f"cannot read video file {path}: {exc}") from exc
        # A file replaced by append_video (os.replace) is a new inode: reopen it.
        key = (backend, path, st.st_ino, st.st_size, st.st_mtime_ns)
        with self.lock:
            entry = self.entries.pop(key, None)
            if entry is not None:
                self.entries[key] = entry
                return entry
        # Open outside the lock: other threads keep decoding other files meanwhile.
        entry = _Entry(_PyAVReader(path) if backend == "pyav" else _TorchCodecReader(path))
        to_close = []
        with self.lock:
            raced = self.entries.get(key)
            if raced is not None:  # another thread opened the same file meanwhile: use its reader
                to_close.append(entry)
                entry = raced
            else:
                to_close += [self.entries.pop(k) for k in list(self.entries) if k[:2] == key[:2]]
                self.entries[key] = entry
                while len(self.entries) > self.capacity:
                    to_close.append(self.entries.popitem(last=False)[1])
        for old in to_close:
            old.close()
        return entry

    def discard(self, entry: _Entry) -> None:
        with self.lock:
            for k, e in list(self.entries.items()):
                if e is entry:
                    del self.entries[k]
        entry.close()

    def clear(self) -> None:
        with self.lock:
            entries = list(self.entries.values())
            self.entries.clear()
        for entry in entries:
            entry.close()


_cache = _ReaderCache(MAX_OPEN_DECODERS)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_cache.drop_inherited)


def clear_decoder_cache() -> None:
    """Close every decoder this process keeps open."""
    _cache.clear()


# --------------------------------------------------------------------------- public entry point


def _read_frames(backend: str, path: str, times: list[float], tolerance_s: float) -> torch.Tensor:
    """(N, 3, H, W) frames at ascending distinct ``times`` with the cached reader of ``path``."""
    while True:
        entry = _cache.get(backend, path)
        if not times:
            return torch.empty((0, 3, entry.reader.height, entry.reader.width), dtype=torch.uint8)
        with entry.lock:
            if entry.closed:
                continue  # evicted by another thread between lookup and use: look up again
            try:
                if backend == "torchcodec":
                    return entry.reader.read(times, tolerance_s)
                rgb = entry.reader.read(times, tolerance_s)
                nhwc = rgb[0][None] if len(rgb) == 1 else np.stack(rgb)
                return torch.from_numpy(nhwc).permute(0, 3, 1, 2)
            except VideoDecodeError as exc:
                error = exc
        _cache.discard(entry)  # its state is unknown after a decoding failure
        raise error


def decode_frames(
    path,
    timestamps: Sequence[float],
    tolerance_s: float = 1e-4,
    backend: str | None = None,
) -> torch.Tensor:
    """Frames presented at ``timestamps`` (seconds) in the video at ``path``: uint8 (N, 3, H, W).

    Frames come back in the order requested; repeated timestamps repeat the frame (decoded once).
    The tensor is a (N, 3, H, W) view of (N, H, W, 3) memory (channels-last strides, as torchcodec
    returns it); call ``.contiguous()`` if a contiguous layout is needed.
    Raises FrameTimestampError if a timestamp has no frame within ``tolerance_s``, and
    VideoDecodeError if the file is missing, truncated or corrupt. ``backend``: "torchcodec" or
    "pyav"; default from :func:`default_backend`.
    """
    backend = resolve_backend(backend)
    path = os.fspath(path)
    if not tolerance_s >= 0:
        raise ValueError(f"decode_frames: tolerance_s must be >= 0, got {tolerance_s!r}")
    requested = np.asarray(
        timestamps.detach().cpu().numpy() if isinstance(timestamps, torch.Tensor) else timestamps,
        dtype=np.float64,
    ).reshape(-1)
    if not np.isfinite(requested).all():
        raise ValueError(
            f"decode_frames ({path}): timestamps must be finite numbers, got {requested.tolist()}"
        )
    unique, inverse = np.unique(requested, return_inverse=True)
    frames = _read_frames(backend, path, unique.tolist(), tolerance_s)
    if len(unique) != len(requested) or not np.array_equal(inverse, np.arange(len(unique))):
        frames = frames[torch.from_numpy(inverse.reshape(-1))]
    # (N, H, W, 3) memory seen as (N, 3, H, W): a permuted view (channels-last strides), as torchcodec
    # returns it. Making it contiguous here would cost more than decoding a smooth frame.
    return frames
