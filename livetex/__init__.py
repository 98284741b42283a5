"""livetex: real-time, audio-reactive video textures."""

__version__ = "0.1.0"

from .errors import LivetexError  # noqa: E402,F401
