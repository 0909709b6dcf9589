"""Media files made here for the media tests: a WAV tone with the ``wave`` module, and the
same few seconds (a tone, or a corpus recording's samples) encoded by PyAV into every
container the media job accepts. Nothing is downloaded and nothing is committed."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

# Container format, audio codec, video codec or None; by the file's extension.
CONTAINERS: dict[str, tuple[str, str, str | None]] = {
    "mp3": ("mp3", "libmp3lame", None),
    "flac": ("flac", "flac", None),
    "ogg": ("ogg", "libopus", None),
    "m4a": ("ipod", "aac", None),
    "mp4": ("mp4", "aac", "libx264"),
    "mov": ("mov", "aac", "libx264"),
    "mkv": ("matroska", "libopus", "libx264"),
    "webm": ("webm", "libopus", "libvpx"),
}

# Solid colours a content detector tells apart (hue, saturation and brightness all move).
COLOURS = [(200, 30, 30), (20, 20, 120), (240, 240, 240), (30, 160, 40)]


def tone(seconds: float = 1.0, rate: int = 16_000, frequency: float = 440.0) -> np.ndarray:
    """A sine tone as float32 samples in [-0.5, 0.5]."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return (0.5 * np.sin(2 * math.pi * frequency * t)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    """16-bit mono PCM, written by the standard library."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit mono WAV's samples as float32, and its rate."""
    with wave.open(str(path), "rb") as handle:
        rate = handle.getframerate()
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768, rate


def concatenate(paths: list[Path], target: Path, *, times: int = 1, gap_s: float = 1.0) -> Path:
    """The recordings one after another (``times`` over), a silence between each."""
    rate = read_wav(paths[0])[1]
    silence = np.zeros(int(gap_s * rate), dtype=np.float32)
    parts = []
    for _ in range(times):
        for path in paths:
            parts += [read_wav(path)[0], silence]
    return write_wav(target, np.concatenate(parts), rate)


def encode(
    path: Path, samples: np.ndarray, rate: int = 16_000, *, extension: str | None = None
) -> Path:
    """Encode mono float32 samples into the container ``path``'s extension names (with a
    small black video track for the video containers)."""
    import av

    container_format, audio_codec, video_codec = CONTAINERS[extension or path.suffix[1:]]
    out_rate = 48_000 if audio_codec == "libopus" else 44_100
    with av.open(str(path), "w", format=container_format) as out:
        video = None
        if video_codec:
            video = out.add_stream(video_codec, rate=5)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(audio_codec, rate=out_rate)
        audio.layout = "stereo"
        _write_audio(out, audio, samples, rate)
        if video is not None:
            seconds = samples.size / rate
            for index in range(max(1, int(seconds * 5))):
                image = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                image.pts = index
                for packet in video.encode(image):
                    out.mux(packet)
            for packet in video.encode(None):
                out.mux(packet)
    return path


def scenes_video(
    path: Path,
    colours: list[tuple[int, int, int]],
    scene_s: float,
    samples: np.ndarray | None = None,
    rate: int = 16_000,
    *,
    fps: int = 25,
    faststart: bool = False,
) -> Path:
    """An H.264 MP4 of solid-colour scenes of ``scene_s`` each (cuts at ``scene_s``,
    ``2 * scene_s``...), with an AAC track of ``samples`` or no audio at all. With
    ``faststart`` the index comes before the media data, so a truncated copy still opens."""
    import av

    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = None
        if samples is not None:
            audio = out.add_stream("aac", rate=44_100)
            audio.layout = "mono"
        index = 0
        for colour in colours:
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, :] = colour
            for _ in range(int(scene_s * fps)):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                index += 1
                for packet in video.encode(frame):
                    out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None and samples is not None:
            _write_audio(out, audio, samples, rate)
    return path


def _write_audio(out, stream, samples: np.ndarray, rate: int) -> None:
    """Mono float32 samples into an open container's audio stream, resampled to its
    format, layout and frame size."""
    import av

    resampler = av.AudioResampler(
        format=stream.format.name,
        layout=stream.layout.name,
        rate=stream.rate,
        frame_size=stream.codec_context.frame_size or 1024,
    )
    source = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    source.sample_rate = rate
    for frame in [*resampler.resample(source), *resampler.resample(None)]:
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
