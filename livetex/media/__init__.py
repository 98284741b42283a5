"""Thin, explicit media I/O: numpy frames and samples in and out of PyAV."""

from .video import VideoInfo, VideoReader, check_file, iter_frames, open_media, probe  # noqa: F401
from .audio import AudioInfo, load_audio, probe_audio  # noqa: F401
from .writer import VideoWriter  # noqa: F401
