"""Media analysis end to end: recordings in through the API, a real worker on the
``media`` queue, timed memories out and searchable. The tone and the broken files are made
here (``tests/media.py``); the corpus's recordings, video and malformed WAVs (through the
``corpus`` fixture) are the real-world layer."""

from __future__ import annotations

import functools
import http.server
import json
import random
import re
import threading
from pathlib import Path

import psutil
import pytest

from bench.media import normalise
from jobs.models import Job, JobStatus
from processing.models import Memory
from tests import media
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]
DONE = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
RECORDING = "audio/sense_and_sensibility_01_austen_64kb-0870.wav"


@pytest.fixture
def worker(media_worker, live):
    return media_worker


@pytest.fixture
def collection_id(api, worker):
    response = api.post("/api/v1/collections/", {"name": "recordings"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_the_media_worker_yields_the_cores_to_other_work(worker):
    main = psutil.Process(worker.proc.pid)
    pool = main.children()
    assert pool and all(process.nice() == 10 for process in pool)
    assert main.nice() == 0  # the process that talks to the broker keeps its priority
    autogroup = Path(f"/proc/{main.pid}/autogroup")
    if autogroup.exists():  # its session leads: the session weighs less than the web's
        assert autogroup.read_text().split()[-2:] == ["nice", "10"]


def upload(api, path: Path, collection_id: str, **params) -> str:
    with path.open("rb") as handle:
        response = api.post(
            "/api/v1/jobs/",
            {
                "type": "media_analysis",
                "collection_id": collection_id,
                "file": handle,
                **({"params": json.dumps(params)} if params else {}),
            },
            format="multipart",
        )
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def search(api, collection_id: str, query: str) -> list[dict]:
    response = api.get(
        "/api/v1/memories/search", {"q": query, "collection_id": collection_id, "limit": 50}
    )
    assert response.status_code == 200, response.content
    return response.json()["results"]


def tone_completes(api, collection_id: str, tmp_path: Path) -> dict:
    """A made recording without speech: completed, nothing stored, and said so."""
    path = media.write_wav(tmp_path / "tone.wav", media.tone(3.0))
    job = wait_status(upload(api, path, collection_id, model="light"), DONE, 120)
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job.result


def test_a_recording_without_speech_completes_with_no_memories(api, collection_id, tmp_path):
    result = tone_completes(api, collection_id, tmp_path)
    assert result["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert result["segments"] == result["words"] == result["memories_created"] == 0
    assert result["warnings"] == ["No speech was found in the recording"]
    assert result["key_moments"] == [] and result["engine"] == "faster-whisper"
    assert result["model"] == "whisper-tiny.en" and result["language"] == "en"
    assert result["kind"] == "wav" and result["streams"][0]["type"] == "audio"


def test_a_corpus_recording_becomes_timed_memories_that_search_cites(api, collection_id, corpus):
    recording = corpus / RECORDING
    job = wait_status(upload(api, recording, collection_id), DONE, 180)
    assert job.status == JobStatus.COMPLETED, job.error_message
    result = job.result
    assert result["duration_s"] == pytest.approx(7.1, abs=0.05)
    assert result["model"] == "whisper-base" and result["language"] == "en"
    assert result["engine"] == "faster-whisper" and result["scenes"] == []
    assert {m["kind"] for m in result["key_moments"]} <= {"loudness_peak", "key_terms"}
    assert result["segments"] >= 1 and result["words"] >= 20
    assert 0 < result["real_time_factor"] < 5
    memories = list(Memory.objects.filter(job_id=job.pk).order_by("chunk_index"))
    assert len(memories) == result["memories_created"] >= 1
    for memory in memories:
        assert memory.source == recording.name and memory.source_type == "audio"
        assert 0 <= memory.position["start_s"] < memory.position["end_s"] <= 7.2
    text = " ".join(m.text for m in memories).lower()
    assert "prudently in his power to do for them" in text

    hits = search(api, collection_id, '"prudently in his power"')
    assert len(hits) == 1 and hits[0]["source"] == recording.name
    assert hits[0]["position"]["start_s"] < 4.0 < hits[0]["position"]["end_s"]
    assert said_at(hits[0], "prudently in his power") < 4.0

    # The same file again: its memories are replaced, not duplicated.
    again = wait_status(upload(api, recording, collection_id), DONE, 180)
    assert again.status == JobStatus.COMPLETED, again.error_message
    assert again.result["memories_created"] == 0
    assert again.result["memories_updated"] == len(memories)
    assert Memory.objects.filter(collection_id=collection_id).count() == len(memories)


def test_a_video_s_scenes_and_words_are_found_and_its_times_cited(api, collection_id, corpus):
    video = corpus / "video" / "austen-scenes.mp4"
    reference = json.loads((corpus / "video" / "austen-scenes.json").read_text())
    job = wait_status(upload(api, video, collection_id), DONE, 180)
    assert job.status == JobStatus.COMPLETED, job.error_message
    result = job.result
    assert result["kind"] == "mp4" and result["duration_s"] == pytest.approx(32.2, 0.01)
    assert [s["type"] for s in result["streams"]] == ["video", "audio"]
    # Every scene of the reference, within 0.5 s, and no other.
    starts = [scene["start_s"] for scene in result["scenes"]]
    assert len(starts) == len(reference["scene_starts_s"]), starts
    for found, expected in zip(starts, reference["scene_starts_s"], strict=True):
        assert abs(found - expected) <= 0.5, (found, expected)
    changes = [m for m in result["key_moments"] if m["kind"] == "scene_change"]
    assert [m["t"] for m in changes] == starts[1:]
    assert all(0 < m["score"] <= 1 and m["label"].startswith("Scene ") for m in changes)
    assert any(m["kind"] == "key_terms" for m in result["key_moments"])
    # The words of each scene are in the memories of that scene's time range.
    memories = Memory.objects.filter(job_id=job.pk, source_type="video")
    for scene, words in zip(result["scenes"], reference["transcript_by_scene"], strict=True):
        held = [m for m in memories if m.position["scene"] == scene["scene"]]
        assert held, scene
        for memory in held:
            assert scene["start_s"] - 0.5 <= memory.position["start_s"]
            assert memory.position["end_s"] <= scene["end_s"] + 0.5
        heard = set(normalise(" ".join(m.text for m in held)))
        expected = normalise(words)
        recall = sum(w in heard for w in expected) / len(expected)
        assert recall >= 0.8, (scene, words, heard)
    hits = search(api, collection_id, '"amiable himself"')
    assert len(hits) == 1 and hits[0]["position"]["scene"] == 5
    last_scene = reference["scene_starts_s"][-1]
    assert said_at(hits[0], "amiable himself") == pytest.approx(last_scene + 0.75, abs=0.75)


def test_a_video_without_audio_gives_its_scenes_and_no_transcript(api, collection_id, tmp_path):
    silent = media.scenes_video(tmp_path / "silent.mp4", media.COLOURS, 2.0)
    job = wait_status(upload(api, silent, collection_id), DONE, 60)
    assert job.status == JobStatus.COMPLETED, job.error_message
    result = job.result
    assert [s["start_s"] for s in result["scenes"]] == pytest.approx([0, 2, 4, 6], abs=0.05)
    assert [m["kind"] for m in result["key_moments"]] == ["scene_change"] * 3
    assert result["segments"] == result["memories_created"] == 0
    assert result["language"] is None and result["model"] is None
    assert result["warnings"] == ["The video has no audio track: scenes only, no transcript"]
    assert not Memory.objects.filter(job_id=job.pk).exists()


def test_a_truncated_video_is_analysed_as_far_as_it_goes(api, collection_id, tmp_path):
    whole = media.scenes_video(
        tmp_path / "whole.mp4", media.COLOURS * 2, 2.0, media.tone(16.0), faststart=True
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    job = wait_status(upload(api, cut, collection_id, model="light"), DONE, 60)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert 1 < job.result["duration_s"] < 15
    assert any("truncated" in w for w in job.result["warnings"]), job.result["warnings"]


def said_at(hit: dict, phrase: str) -> float:
    """When a hit's phrase was said: the start of the cue its words fall in."""
    at = hit["text"].lower().index(phrase)
    return max((cue for cue in hit["position"]["cues"] if cue[0] <= at), key=lambda c: c[0])[1]


def made_bad_files(tmp_path: Path) -> dict[Path, tuple[str, str]]:
    """Broken inputs made here, by the code and words their job's error must carry."""
    noise = tmp_path / "noise.wav"
    noise.write_bytes(random.Random(18).randbytes(5000))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(media.write_wav(tmp_path / "whole.wav", media.tone(1.0)).read_bytes()[:20])
    # Five minutes and ten seconds of 8 kHz tone: past the worker's 300 s limit.
    long = media.write_wav(tmp_path / "long.wav", media.tone(310, rate=8000), rate=8000)
    # An MP4 cut in half whose index (at the end, as most encoders write it) is gone.
    whole = media.scenes_video(tmp_path / "whole.mp4", media.COLOURS, 1.0, media.tone(4.0))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return {
        truncated: ("media_invalid", "MP4 file is malformed"),
        noise: ("unsupported_type", "not audio or video"),
        cut: ("media_invalid", "WAV file is malformed"),
        long: ("too_long", "lasts 5 min 10 s; at most 5 min 00 s"),
    }


CORPUS_BAD = {
    "awful.wav": ("media_invalid", "sample rate"),
    "bad.wav": ("media_invalid", "cannot read its header"),
    "evil.wav": ("media_invalid", "cannot read its header"),
    "null.wav": ("no_audio", "no audio samples"),
}


@pytest.mark.parametrize("source", ["made", "corpus"])
def test_bad_files_fail_with_a_specific_message_and_the_worker_goes_on(
    api, collection_id, request, source, tmp_path
):
    if source == "corpus":
        corpus = request.getfixturevalue("corpus")
        bad = {corpus / "bad" / name: expected for name, expected in CORPUS_BAD.items()}
    else:
        bad = made_bad_files(tmp_path)
    jobs = {path: upload(api, path, collection_id) for path in bad}
    for path, job_id in jobs.items():
        job = wait_status(job_id, DONE, 60)
        code, words = bad[path]
        assert job.status == JobStatus.FAILED, path.name
        assert job.attempts == 1, (path.name, job.attempts)  # bad input is not retried
        assert job.error_code == code, (path.name, job.error_code, job.error_message)
        assert words in job.error_message, (path.name, job.error_message)
        assert "Traceback" not in job.error_message and len(job.error_message) < 300
    assert not Memory.objects.filter(collection_id=collection_id).exists()
    tone_completes(api, collection_id, tmp_path)


def test_a_long_recording_is_cancelled_midway_and_writes_nothing(
    api, collection_id, corpus, tmp_path
):
    recordings = sorted((corpus / "audio").glob("*.wav"))
    long = media.concatenate(recordings, tmp_path / "long.wav", times=4, gap_s=1.0)
    seconds = media.read_wav(long)[0].size / 16_000
    assert 110 < seconds < 130
    job_id = upload(api, long, collection_id, model="light")
    step = re.compile(r"(\d+) s of (\d+) s")

    def midway() -> bool:
        job = Job.objects.get(pk=job_id)
        assert job.status not in DONE, job.status  # it must still be running to cancel
        found = step.fullmatch(job.current_step or "")
        return bool(found) and 0 < int(found[1]) < seconds - 30

    wait_for(midway, 120, "the job to transcribe its first span")
    response = api.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code in (200, 202), response.content
    job = wait_status(job_id, DONE, 60)
    assert job.status == JobStatus.CANCELLED
    assert not Memory.objects.filter(job_id=job_id).exists()
    assert job.progress < 90
    # The worker goes on (a cancel the span in flight outlasted is a killed pool process,
    # which the worker replaces).
    tone_completes(api, collection_id, tmp_path)


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_file_url_is_fetched_and_create_refuses_what_cannot_run(api, collection_id, tmp_path):
    media.write_wav(tmp_path / "tone.wav", media.tone(2.0))
    handler = functools.partial(_Files, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tone.wav"
        created = api.post(
            "/api/v1/jobs/",
            {"type": "media_analysis", "collection_id": collection_id, "file_url": url},
            format="json",
        )
        assert created.status_code == 202, created.content
        job = wait_status(created.json()["job_id"], DONE, 60)
        assert job.status == JobStatus.COMPLETED, job.error_message
        assert job.result["source"] == url and job.result["duration_s"] == pytest.approx(2.0)
    finally:
        server.shutdown()
        server.server_close()
    refused = api.post(
        "/api/v1/jobs/",
        {
            "type": "media_analysis",
            "collection_id": collection_id,
            "params": {"file_url": url, "model": "light", "language": "de"},
        },
        format="json",
    )
    assert refused.status_code == 400 and "English only" in refused.json()["error"]["message"]
