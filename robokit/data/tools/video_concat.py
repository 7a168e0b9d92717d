"""Cut episodes out of mp4 files and concatenate them into one mp4, copying packets (no re-encoding).

A v3.0 video file holds many episodes back to back; episode `k` occupies `[from_timestamp_k,
to_timestamp_k)`. Every episode was encoded on its own (robokit, LeRobot), so its first packet is
a keyframe and its packets can be copied anywhere else with a time shift. `VideoConcatenator`
writes such segments one after the other into a new file (temporary name, renamed on `close`)
and tells where each one starts.

All segments of one output must share codec, size, pixel format, time base and codec extradata;
`compatible` lets a caller start a new file instead.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from robokit.data.video_encode import stream_params

logger = logging.getLogger(__name__)


class VideoSegmentError(RuntimeError):
    """A video segment cannot be copied without re-encoding; the message names the file and time range."""


@dataclass
class Segment:
    """Packets of one episode in one camera, read into memory (an episode is at most a few MB)."""

    source: Path
    packets: list
    params: dict
    start_ticks: int  # presentation time of the segment's first frame in the source, in time_base ticks
    end_ticks: int  # end of the last frame's display interval in the source
    time_base: Fraction

    @property
    def nbytes(self) -> int:
        return sum(p.size for p in self.packets)

    @property
    def num_frames(self) -> int:
        return len(self.packets)


def read_segment(path: Path, from_s: float = 0.0, to_s: float | None = None, fps: int | None = None) -> Segment:
    """The packets of `path` presented in `[from_s, to_s)` (the whole file when `to_s` is None).

    A frame belongs to the range when its presentation time is within half a frame of it, so that
    float rounding of the stored timestamps does not move a boundary.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} does not exist")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoSegmentError(f"cannot open video {path}: {e}") from e
    with container:
        if not container.streams.video:
            raise VideoSegmentError(f"{path} has no video stream")
        stream = container.streams.video[0]
        time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or (Fraction(fps) if fps else None)
        frame_ticks = int(round(1 / (Fraction(rate) * time_base))) if rate else 1
        half = Fraction(frame_ticks, 2) * time_base
        low = Fraction(from_s) - half
        high = None if to_s is None else Fraction(to_s) - half
        packets = []
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue  # end-of-stream marker
                t = packet.pts * time_base
                if t < low or (high is not None and t >= high):
                    continue
                packets.append(packet)
        except av.error.FFmpegError as e:
            raise VideoSegmentError(f"cannot read the packets of {path} ({e}); the file may be truncated") from e
        params = stream_params(stream)
    where = f"{path} [{from_s:.4f}s, {'end' if to_s is None else f'{to_s:.4f}s'})"
    if not packets:
        raise VideoSegmentError(f"{where} holds no frames")
    packets.sort(key=lambda p: p.dts if p.dts is not None else p.pts)
    if not packets[0].is_keyframe:
        raise VideoSegmentError(
            f"{where} does not start with a keyframe, so it cannot be cut without re-encoding "
            "(robokit and LeRobot encode every episode separately, which always starts with one)"
        )
    start = min(p.pts for p in packets)
    end = max(p.pts + (p.duration or frame_ticks) for p in packets)
    return Segment(path, packets, params, start, end, time_base)


class VideoConcatenator:
    """Write segments back to back into `path` (through a temporary file renamed by `close`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        self._output = None
        self._stream = None
        self._params: dict | None = None
        self._end_ticks = 0
        self.nbytes = 0
        self.num_segments = 0

    def compatible(self, segment: Segment) -> bool:
        return self._params is None or self._params == segment.params

    def add(self, segment: Segment, template_path: Path | None = None) -> float:
        """Append `segment`; returns the time (s) at which its first frame is presented in the output."""
        import av

        if self._params is not None and self._params != segment.params:
            diff = [k for k in self._params if self._params[k] != segment.params[k]]
            raise VideoSegmentError(
                f"{segment.source} differs from the other videos of {self.path} in {diff}; "
                "segments of one file must share the encoder settings"
            )
        if self._output is None:
            self._output = av.open(str(self._tmp), mode="w", format="mp4")
            with av.open(str(template_path or segment.source)) as src:
                self._stream = self._output.add_stream_from_template(src.streams.video[0], opaque=True)
            self._params = segment.params
        from_ticks = self._end_ticks
        shift = from_ticks - segment.start_ticks
        for packet in segment.packets:
            packet.pts += shift
            if packet.dts is not None:
                packet.dts += shift
            packet.stream = self._stream
            self._output.mux(packet)  # rebases the packet to the output's time base: a segment is used once
        self._end_ticks = from_ticks + (segment.end_ticks - segment.start_ticks)
        self.nbytes += segment.nbytes
        self.num_segments += 1
        return float(from_ticks * segment.time_base)

    @property
    def empty(self) -> bool:
        return self._output is None

    def close(self) -> None:
        """Finish the file and make it visible under its name."""
        if self._output is None:
            return
        try:
            self._output.close()
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        finally:
            self._output = None

    def abort(self) -> None:
        if self._output is not None:
            try:
                self._output.close()
            except Exception:  # noqa: BLE001 - the file is discarded anyway
                pass
            self._output = None
        self._tmp.unlink(missing_ok=True)
