"""Video encoding for the episode dataset: a background streaming encoder, remuxing parts, stream info.

A camera's frames go to :class:`StreamingVideoEncoder`, which encodes them with PyAV (FFmpeg) in a
background thread while the control loop keeps running. Each episode becomes one small mp4
("part"); :func:`append_video` then copies the part's packets (no re-encoding) after the episodes
already in the camera's shared mp4, so that episode ``k``'s frame ``i`` is presented at exactly
``from_timestamp_k + i / fps``.

Timing is exact by construction: frames get ``pts = i`` in a ``1/fps`` time base. The mp4 muxer
turns that into a track timescale that is a multiple of ``fps`` (``fps * 2**k >= 10000``, e.g.
15360 for 30 fps), so every frame time is an integer number of ticks and survives remuxing.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Short codec names (as written in info.json) -> FFmpeg encoder.
ENCODERS = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}
_ENCODER_ALIASES = {encoder: short for short, encoder in ENCODERS.items()}

# SVT-AV1 presets run 0 (slowest, best) .. 13; SVT-AV1 4.x (bundled with PyAV 18) maps 12 and 13
# to 11 unless in real-time mode, and real-time mode (rtc=1, low-delay prediction) measured slower
# and larger here at GOP 2. 11 is therefore the fastest preset: ~9 ms CPU per smooth 480x640
# image and ~20 ms per textured one, against ~16 / ~51 ms for preset 8, at the same size (every
# other frame is a keyframe at GOP 2). LeRobot passes 12, which SVT-AV1 4.x runs as 11: same
# speed, same files. x264 "veryfast" is ~2x faster than its default "medium" for <10% more bytes;
# x265 is slow at GOP 2 whatever the preset, "ultrafast" is the only one near real time.
# Figures: benchmarks/bench_video.py.
DEFAULT_PRESETS: dict[str, int | str] = {"av1": 11, "h264": "veryfast", "hevc": "ultrafast"}
DEFAULT_QUEUE_FRAMES = 90
"""Frames a StreamingVideoEncoder buffers before add_frame blocks (3 s at 30 fps; 83 MB at 480x640)."""
DEFAULT_ENCODER_NICENESS = 10
"""How much lower than the recording thread the codec's own worker threads run (Linux nice
increment, 0..19).

A control loop and its encoders share a few cores, and SVT-AV1 starts ~16 worker threads per
encoder; at equal priority they take the loop's core for a few ms at a time, and a tick that loses
it is late. The codec is opened in a short-lived helper thread that first lowers its own priority:
the codec's threads, started there, inherit it (Linux nice values are per thread). The encoder's
Python thread itself stays at normal priority: PyAV holds the GIL for part of every frame, and a
low-priority thread preempted while holding it would stall the loop (priority inversion: lowering
the whole encoder thread measured worse). Figures: docs/hardware.md."""

_STOP = object()


class VideoEncodeError(RuntimeError):
    """Encoding or remuxing a video file failed; the message names the file."""


def encoder_name(codec: str) -> str:
    """The FFmpeg encoder for a codec name ("av1" -> "libsvtav1"); ValueError for an unknown name."""
    if codec in ENCODERS:
        return ENCODERS[codec]
    if codec in _ENCODER_ALIASES:
        return codec
    choices = ", ".join(f"{k!r} ({v})" for k, v in ENCODERS.items())
    raise ValueError(f"video codec {codec!r} is not supported; expected one of {choices}")


def _short_codec(codec: str) -> str:
    return codec if codec in ENCODERS else _ENCODER_ALIASES[codec]


def _quiet_encoder_logs() -> None:
    # SVT-AV1 prints its configuration to stderr for every encoder; 1 = errors only. Users who set
    # SVT_LOG themselves keep their level.
    os.environ.setdefault("SVT_LOG", "1")


def _encoder_options(codec: str, g: int | None, crf: int | None, preset, options: dict | None) -> dict:
    short = _short_codec(codec)
    opts: dict[str, str] = {}
    if g is not None:
        opts["g"] = str(int(g))
    if crf is not None:
        opts["crf"] = str(crf)
    preset = DEFAULT_PRESETS[short] if preset is None else preset
    opts["preset"] = str(preset)
    if short == "av1":
        # One SVT-AV1 thread pool per encoder: a recording runs one encoder per camera, and on a
        # small machine their pools compete; lp=1 measured ~10% less CPU per image (two cameras).
        opts["svtav1-params"] = "lp=1"
    if short == "hevc":
        opts["x265-params"] = "log-level=error"
    if short in ("h264", "hevc"):
        # No B-frames: with GOP 2 they buy nothing, and without them decode order = presentation
        # order, so pts == dts and appending parts is a plain time shift.
        opts["bf"] = "0"
    opts.update({str(k): str(v) for k, v in (options or {}).items()})
    return opts


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


class StreamingVideoEncoder:
    """Encode (H, W, 3) uint8 frames into an mp4 in a background thread.

    ``add_frame`` copies the frame into a bounded queue and returns; a thread converts and encodes.
    The codec's worker threads run ``niceness`` (default :data:`DEFAULT_ENCODER_NICENESS`) below
    normal priority on Linux, so that a control loop recording in the same process stays on time.
    The file is written under a temporary name in the same folder and renamed to ``path`` by
    ``close()``, so ``path`` only ever holds a complete video. ``abort()`` discards it.

    Frame ``i`` is presented at exactly ``i / fps`` seconds.
    """

    def __init__(
        self,
        path,
        fps: int,
        codec: str = "av1",
        pix_fmt: str = "yuv420p",
        g: int | None = 2,
        crf: int | None = 30,
        preset: int | str | None = None,
        options: dict | None = None,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        niceness: int | None = None,
    ):
        if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps <= 0:
            raise ValueError(f"StreamingVideoEncoder: fps must be a positive integer, got {fps!r}")
        if g is not None and (isinstance(g, bool) or int(g) != g or g < 1):
            raise ValueError(
                f"StreamingVideoEncoder: g (GOP size) must be a positive integer or None, got {g!r}"
            )
        if queue_frames < 1:
            raise ValueError(f"StreamingVideoEncoder: queue_frames must be >= 1, got {queue_frames!r}")
        niceness = DEFAULT_ENCODER_NICENESS if niceness is None else niceness
        if isinstance(niceness, bool) or not isinstance(niceness, int) or not 0 <= niceness <= 19:
            raise ValueError(f"StreamingVideoEncoder: niceness must be an integer in 0..19, got {niceness!r}")
        self.niceness = niceness
        self.path = Path(path)
        self.fps = int(fps)
        self.codec = _short_codec(encoder_name(codec))
        self.pix_fmt = pix_fmt
        self._encoder = ENCODERS[self.codec]
        self._options = _encoder_options(codec, g, crf, preset, options)
        self._tmp = _temp_path(self.path)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._shape: tuple[int, ...] | None = None
        self._added = 0
        self._encoded = 0
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._state = "open"  # open -> closed | aborted
        _quiet_encoder_logs()
        self._thread = threading.Thread(target=self._run, name=f"encode:{self.path.name}", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- producer side

    def add_frame(self, frame: np.ndarray) -> None:
        """Queue one (H, W, 3) uint8 frame. Blocks only while the queue is full."""
        if self._state != "open":
            raise RuntimeError(f"add_frame on the {self._state} video encoder for {self.path}")
        self._raise_if_failed()
        if not isinstance(frame, np.ndarray):
            raise TypeError(
                f"add_frame ({self.path.name}): frame must be a numpy array (H, W, 3) uint8, "
                f"got {type(frame).__name__}"
            )
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(
                f"add_frame ({self.path.name}): frame has shape {frame.shape} dtype {frame.dtype}, "
                "expected (H, W, 3) uint8"
            )
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(
                f"add_frame ({self.path.name}): frame {self._added} has shape {frame.shape}, "
                f"the first frame of this video had {self._shape}"
            )
        # Copy: the caller may reuse its buffer (camera drivers often do).
        self._put(np.array(frame, copy=True, order="C"))
        self._added += 1

    def close(self) -> int:
        """Wait until every queued frame is encoded and the file is complete; return the frame count.

        With no frame added, no file is written and 0 is returned.
        """
        if self._state == "closed":
            return self._encoded
        if self._state == "aborted":
            raise RuntimeError(f"close on the aborted video encoder for {self.path}")
        self._state = "closed"
        self._put(_STOP)
        self._thread.join()
        self._raise_if_failed()
        return self._encoded

    def abort(self) -> None:
        """Stop encoding and delete the partial file. Does nothing after a successful close()."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._abort.set()
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass  # the thread sees the abort flag at its next frame
        self._thread.join()
        _unlink(self._tmp)

    @property
    def frames_added(self) -> int:
        return self._added

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _put(self, item) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                self._raise_if_failed()
                if not self._thread.is_alive():
                    raise VideoEncodeError(f"the encoder thread for {self.path} has stopped") from None

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            err = self._error
            raise VideoEncodeError(
                f"encoding video {self.path} failed at frame {self._encoded}: {type(err).__name__}: {err}"
            ) from err

    # ----------------------------------------------------------------- encoder thread

    def _run(self) -> None:
        import av

        container = stream = None
        try:
            while True:
                item = self._queue.get()
                if item is _STOP or self._abort.is_set():
                    break
                if container is None:
                    container, stream = self._open(av, item.shape)
                # Wraps the queued copy without copying it again (from_ndarray copies while holding
                # the GIL); the encoder converts it to its pixel format outside the GIL.
                frame = av.VideoFrame.from_numpy_buffer(item, format="rgb24")
                frame.pts = self._encoded
                frame.time_base = stream.codec_context.time_base
                frame.duration = 1
                for packet in stream.encode(frame):
                    container.mux(packet)
                self._encoded += 1
            if container is not None:
                if not self._abort.is_set():
                    for packet in stream.encode(None):
                        container.mux(packet)
                container.close()
                container = None
                if self._abort.is_set():
                    _unlink(self._tmp)
                else:
                    os.replace(self._tmp, self.path)
        except BaseException as exc:  # handed to the producer thread by _raise_if_failed
            self._error = exc
            if container is not None:
                try:
                    container.close()
                except Exception:
                    logger.debug("closing %s after an encoding error failed", self._tmp, exc_info=True)
            _unlink(self._tmp)
            logger.debug("encoder thread for %s failed", self.path, exc_info=True)

    def _open(self, av, shape):
        height, width = int(shape[0]), int(shape[1])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self._tmp), mode="w", format="mp4")
        try:
            stream = container.add_stream(self._encoder, rate=self.fps, options=self._options)
            stream.width = width
            stream.height = height
            stream.pix_fmt = self.pix_fmt
            stream.codec_context.time_base = Fraction(1, self.fps)
            stream.time_base = Fraction(1, self.fps)
            _open_codec(stream.codec_context, self.niceness)
        except BaseException:
            container.close()
            raise
        return container, stream


def _open_codec(codec_context, niceness: int) -> None:
    """Open the codec from a helper thread at lower priority, so that the worker threads the codec
    starts inherit that priority while the calling (GIL-holding) thread keeps its own."""
    if niceness <= 0 or not sys.platform.startswith("linux"):
        codec_context.open()
        return
    errors: list[BaseException] = []

    def run():
        _lower_thread_priority(niceness)
        try:
            codec_context.open()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the encoder thread
            errors.append(exc)

    helper = threading.Thread(target=run, name="encoder-open", daemon=True)
    helper.start()
    helper.join()
    if errors:
        raise errors[0]


def _lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by ``increment`` (Linux only: there a nice value belongs
    to one thread, and the threads it starts inherit it; elsewhere it would renice the process)."""
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except OSError as exc:  # e.g. a sandbox forbidding it: the codec runs at normal priority
        logger.debug("could not lower the priority of thread %d: %s", tid, exc)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- remuxing


def append_video(current: Path | None, part: Path, out: Path) -> float:
    """Write ``current``'s frames followed by ``part``'s into ``out`` without re-encoding.

    Returns ``from_timestamp``: the time (s) at which ``part``'s first frame is presented in
    ``out``; its frame ``i`` is at ``from_timestamp + i / fps``. ``out`` may be ``current``: the
    result is written to a temporary file in the same folder and renamed over ``out``, so a
    reader never sees a half-written file. Both inputs must come from the same encoder settings.
    """
    import av

    part = Path(part)
    out = Path(out)
    sources = [Path(current), part] if current is not None else [part]
    for src in sources:
        if not src.is_file():
            raise FileNotFoundError(f"append_video: video file {src} does not exist")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(out)
    from_timestamp = Fraction(0)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as output:
            out_stream = None
            reference = None
            end = Fraction(0)  # where the content written so far ends, in seconds
            for src in sources:
                with _open_input(av, src) as container:
                    stream = container.streams.video[0]
                    params = stream_params(stream)
                    if out_stream is None:
                        out_stream = output.add_stream_from_template(stream, opaque=True)
                        reference = (src, params)
                    else:
                        _check_same_params(reference, (src, params), out)
                    from_timestamp = end
                    end = _copy_packets(container, stream, out_stream, output, shift=end, src=src)
        os.replace(tmp, out)
    except BaseException:
        _unlink(tmp)
        raise
    return float(from_timestamp)


def _open_input(av, path: Path):
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoEncodeError(f"cannot open video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoEncodeError(f"{path} has no video stream")
    return container


def stream_params(stream) -> dict:
    """What must match for two streams' packets to be concatenated without re-encoding."""
    cc = stream.codec_context
    return {
        "codec": cc.codec.canonical_name,
        "width": cc.width,
        "height": cc.height,
        "pix_fmt": cc.pix_fmt,
        "time_base": stream.time_base,
        "extradata": bytes(cc.extradata or b""),
    }


def _check_same_params(reference, candidate, out: Path) -> None:
    (ref_path, ref), (path, params) = reference, candidate
    for key in ("codec", "width", "height", "pix_fmt", "time_base", "extradata"):
        if ref[key] != params[key]:
            shown = (ref[key], params[key]) if key != "extradata" else ("<bytes>", "<different bytes>")
            raise ValueError(
                f"append_video ({out}): {path} has {key}={shown[1]!r} but {ref_path} has {shown[0]!r}; "
                "parts appended to one video must be encoded with the same settings"
            )


def _copy_packets(container, stream, out_stream, output, shift: Fraction, src: Path) -> Fraction:
    """Mux every packet of ``stream`` into ``out_stream``, delayed by ``shift`` s; return the end time."""
    time_base = stream.time_base
    ticks = shift / time_base
    if ticks.denominator != 1:
        raise ValueError(
            f"append_video: {src} uses time base {time_base}, which cannot express the offset "
            f"{shift} s exactly; parts must share the frame rate and time base"
        )
    shift_ticks = int(ticks)
    rate = stream.average_rate or stream.guessed_rate
    default_duration = round(1 / (rate * time_base)) if rate else 0
    end_ticks = 0
    for packet in container.demux(stream):
        if packet.pts is None and packet.dts is None:
            continue  # the demuxer's end-of-stream marker
        if packet.pts is None:
            raise VideoEncodeError(f"append_video: {src} has a packet without a presentation time")
        end_ticks = max(end_ticks, packet.pts + (packet.duration or default_duration))
        packet.pts += shift_ticks
        if packet.dts is not None:
            packet.dts += shift_ticks
        packet.stream = out_stream
        output.mux(packet)
    return shift + end_ticks * time_base


# --------------------------------------------------------------------------- stream info


def _pix_fmt_channels(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 3
    if pix_fmt.startswith(("gray", "y400")):
        return 1
    if pix_fmt.startswith(("yuva", "rgba", "bgra", "argb", "abgr", "gbrap")):
        return 4
    return 3


def video_info(path) -> dict:
    """The ``info`` dict of a video feature in info.json, read from the file's first video stream."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video_info: video file {path} does not exist")
    with _open_input(av, path) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps: int | float = float(rate) if rate else 0.0
        if abs(fps - round(fps)) < 1e-6:
            fps = round(fps)
        return {
            "video.height": cc.height,
            "video.width": cc.width,
            "video.codec": cc.codec.canonical_name,
            "video.pix_fmt": cc.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": _pix_fmt_channels(cc.pix_fmt),
            "has_audio": len(container.streams.audio) > 0,
        }


def video_frame_count(path) -> int:
    """Number of video frames in the file (from the mp4 index; packets are counted if it has none)."""
    import av

    with _open_input(av, Path(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for p in container.demux(stream) if p.size)


def video_duration_s(path) -> float:
    """End of the last frame's display interval in seconds (= frame count / fps for our files)."""
    import av

    path = Path(path)
    with _open_input(av, path) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            start = stream.start_time or 0
            return float((stream.duration + start) * stream.time_base)
        end = Fraction(0)
        for packet in container.demux(stream):
            if packet.pts is not None:
                end = max(end, (packet.pts + packet.duration) * stream.time_base)
        return float(end)
