"""Is a downloaded file a whole, decodable video? Probe it with PyAV before it is kept.

:func:`probe_video` opens the container, reads every packet of the first video stream
(without decoding them: cheap) and decodes the first and the last keyframe. A file
passes when it opens, has a video stream, decodes at both ends, and the packets it holds
cover its declared duration. A truncated file fails (its index is missing, or its last
packets are), and so does a body that is not a video at all.

:func:`remux_to_mp4` copies the video stream of another container (WebM, MKV, MOV)
into MP4 without re-encoding, so every finished file is ``videos/<id>.mp4``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The packets must reach this share of the declared duration (minus a frame or two):
# a file cut short is missing its last packets (containers without an index say so this way).
MIN_COVERED = 0.9


class CorruptVideo(Exception):
    """The file arrived but is not a whole, decodable video."""


@dataclass
class VideoProbe:
    duration_s: float
    width: int
    height: int
    codec: str
    fps: float | None
    container: str

    @property
    def short_side(self) -> int:
        """The side that "360p" refers to (portrait videos count by their width)."""
        return min(self.width, self.height)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decode_one(codec_context, packet) -> bool:
    """True if ``packet`` (a keyframe) decodes to at least one frame on its own."""
    codec_context.flush_buffers()
    frames = list(codec_context.decode(packet))
    frames += list(codec_context.decode(None))  # drain: a decoder with delay holds the frame back
    return bool(frames)


@dataclass
class _Scan:
    packets: int = 0
    start: float = 0.0
    end: float = 0.0
    first_key: Any = None
    last_key: Any = None


def _scan_packets(container, stream) -> _Scan:
    """Read every packet of ``stream`` (no decoding): its time span and its first and last keyframes."""
    import av

    scan = _Scan()
    tb = stream.time_base
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            scan.packets += 1
            if packet.is_corrupt:
                raise CorruptVideo(f"packet {scan.packets} is damaged (the file is cut short or broken)")
            t0 = float(packet.pts * tb)
            t1 = t0 + float((packet.duration or 0) * tb)
            scan.start = t0 if scan.packets == 1 else min(scan.start, t0)
            scan.end = max(scan.end, t1)
            if packet.is_keyframe:
                if scan.first_key is None:
                    scan.first_key = packet
                scan.last_key = packet
    except (av.FFmpegError, OSError) as e:
        raise CorruptVideo(f"cannot read packet {scan.packets + 1}: {e}") from None
    return scan


def probe_video(path: Path) -> VideoProbe:
    """Check ``path`` decodes and is complete; return what it is.

    Raises:
        CorruptVideo: with the reason, when the file is not a whole decodable video.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise CorruptVideo(f"cannot open: {getattr(e, 'strerror', None) or e}") from None
    with container:
        if not container.streams.video:
            raise CorruptVideo("no video stream")
        stream = container.streams.video[0]
        cc = stream.codec_context
        width, height = int(cc.width or 0), int(cc.height or 0)
        if width <= 0 or height <= 0:
            raise CorruptVideo("video stream has no frame size")
        tb = stream.time_base
        declared = float(stream.duration * tb) if stream.duration and tb else None
        if declared is None and container.duration:
            declared = container.duration / 1_000_000
        scan = _scan_packets(container, stream)
        if scan.packets == 0 or scan.first_key is None:
            raise CorruptVideo("no video packets" if scan.packets == 0 else "no keyframe")
        if stream.frames and scan.packets < stream.frames:
            raise CorruptVideo(f"holds {scan.packets} of its {stream.frames} frames (truncated)")
        covered = scan.end - scan.start
        fps = float(stream.average_rate) if stream.average_rate else None
        declared = declared if declared and declared > 0 else covered
        if covered < MIN_COVERED * declared - 2 * (1.0 / fps if fps else 0.1):
            raise CorruptVideo(f"packets cover {covered:.2f} s of the declared {declared:.2f} s (truncated)")
        try:
            keys = [scan.first_key] if scan.last_key is scan.first_key else [scan.first_key, scan.last_key]
            for key in keys:
                if not _decode_one(cc, key):
                    raise CorruptVideo(f"keyframe at {float(key.pts * tb):.2f} s does not decode")
        except (av.FFmpegError, ValueError) as e:
            raise CorruptVideo(f"does not decode: {e}") from None
        return VideoProbe(
            duration_s=round(max(declared, covered), 3),
            width=width,
            height=height,
            codec=cc.name,
            fps=round(fps, 3) if fps else None,
            container=container.format.name,
        )


def is_mp4(path: Path) -> bool:
    """True for an ISO-BMFF (MP4/MOV family) file: what ``videos/<id>.mp4`` promises."""
    with open(path, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")


def remux_to_mp4(src: Path, dst: Path) -> None:
    """Copy the first video stream of ``src`` into an MP4 at ``dst`` (no re-encoding)."""
    import av

    try:
        with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
            if not inp.streams.video:
                raise CorruptVideo("no video stream")
            in_stream = inp.streams.video[0]
            out_stream = out.add_stream_from_template(in_stream)
            for packet in inp.demux(in_stream):
                if packet.size == 0:  # the demuxer's flush packet; packets without a dts (the first ones of
                    continue  # H.264 with B-frames in Matroska) are kept: the MP4 muxer computes their dts
                packet.stream = out_stream
                out.mux(packet)
    except av.FFmpegError as e:
        raise CorruptVideo(f"cannot remux to MP4: {e}") from None
