"""Media analysis: audio (and the audio track of video) into timed, searchable memories.

The file's kind comes from its bytes (``probe.sniff``); FFmpeg's libraries, through PyAV's
wheels, read the container's header first (``probe.probe``: duration, streams, codecs) so
what exceeds the limits fails before any decoding; ``decode`` turns the audio into 16 kHz
mono in bounded blocks; ``engines`` puts the speech-to-text model behind a small interface
(models that ship in packages, verified by hash, never downloaded); ``pipeline`` is the
``media_analysis`` job. FFmpeg and the models load in workers only: the web process never
imports PyAV, faster-whisper or onnxruntime.
"""
