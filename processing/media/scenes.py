"""Where a video's scenes change: PySceneDetect's content detector over its frames.

The detector compares each frame with the one before in HSV colour (frames scaled down
first) and reports a cut where the difference passes a threshold, with a minimum scene
length so a flash is not a scene. Frames are read through PyAV, the FFmpeg the rest of
the media pipeline uses. Detection runs in windows of ``WINDOW_SECONDS`` of video so the
job reports progress and honours a cancel while it reads; the detector keeps its state
from one window to the next, so a cut on a window's edge is found as any other.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processing.media.probe import MediaError, MediaInfo, _reason

# Seconds of video read between two progress reports (and cancel checks).
WINDOW_SECONDS = 10.0
# PySceneDetect's default: the HSV difference (0-255) a cut must reach.
THRESHOLD = 27.0
# A difference this far past the threshold scores 1.0; a bare cut scores near 0.25.
FULL_SCORE = 4 * THRESHOLD
# Frames a scene lasts at least (PySceneDetect's default, 0.6 s at 25 fps).
MIN_SCENE_FRAMES = 15


@dataclass(frozen=True)
class Cut:
    """A scene change: the time of the new scene's first frame, and how clear a change it
    is (0-1, from the frames' colour difference)."""

    t: float
    score: float


def cuts(
    path: Path,
    info: MediaInfo,
    on_window: Callable[[float], None] | None = None,
    *,
    window_seconds: float = WINDOW_SECONDS,
) -> list[Cut]:
    """The scene changes of ``info``'s video stream, in order; ``on_window`` gets the
    seconds read so far after each window (it may raise to stop, as a cancel does)."""
    import cv2
    from scenedetect import SceneManager

    # PySceneDetect sets its logger to INFO on import: one line per window read.
    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)
    # One core per media job: OpenCV would spread each small frame's arithmetic over all.
    cv2.setNumThreads(1)
    from scenedetect.backends.pyav import VideoStreamAv
    from scenedetect.video_stream import VideoOpenFailure

    label = info.label
    try:
        # Opened by path through PyAV directly: scenedetect's ``open_video`` would fall
        # back to OpenCV's own FFmpeg on a file PyAV refuses.
        video = VideoStreamAv(str(path), suppress_output=True)
    except (VideoOpenFailure, OSError, ValueError) as exc:
        raise MediaError(
            f"The {label} file's video cannot be read ({_reason(exc)})", code="media_invalid"
        ) from None
    detector = _scored_detector_class()(threshold=THRESHOLD, min_scene_len=MIN_SCENE_FRAMES)
    manager = SceneManager()
    manager.auto_downscale = True
    manager.add_detector(detector)
    while _window(manager, video, window_seconds, label):
        if on_window is not None:
            on_window(video.position.seconds)
    return [
        Cut(round(start.seconds, 3), detector.score_at(start.frame_num))
        for start, _ in manager.get_scene_list()[1:]
    ]


def _window(manager: Any, video: Any, seconds: float, label: str) -> int:
    """Detect over the next ``seconds`` of video; the frames read (0 at the end)."""
    try:
        return manager.detect_scenes(video, duration=seconds)
    except Exception as exc:  # whatever PySceneDetect's reader raises on a broken stream
        raise MediaError(
            f"The {label} file's video is damaged: reading stopped after "
            f"{video.position.seconds:.1f} s ({_reason(exc)})",
            code="media_invalid",
        ) from None


@functools.cache
def _scored_detector_class() -> type:
    """Built on first use: PySceneDetect (and OpenCV) load in workers only."""
    from scenedetect.detectors import ContentDetector

    class ScoredContentDetector(ContentDetector):
        """The content detector, remembering the recent frames' scores so each cut it
        reports (possibly a few frames late, after its flash filter) gets the score of the
        frame it names. Only the last scene-length of frames is kept: memory stays flat."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._recent: deque[tuple[int, float]] = deque(maxlen=4 * MIN_SCENE_FRAMES)
            self.scores: dict[int, float] = {}

        def process_frame(self, timecode: Any, frame_img: Any) -> list[Any]:
            found = super().process_frame(timecode, frame_img)
            score = getattr(self, "_frame_score", None)  # set by ContentDetector 0.6-0.7
            if score is not None:
                self._recent.append((timecode.frame_num, float(score)))
            for cut in found:
                value = dict(self._recent).get(cut.frame_num)
                self.scores[cut.frame_num] = (
                    round(min(1.0, value / FULL_SCORE), 3) if value is not None else 1.0
                )
            return found

        def score_at(self, frame_num: int) -> float:
            return self.scores.get(frame_num, 1.0)

    return ScoredContentDetector
