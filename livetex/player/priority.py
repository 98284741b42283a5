"""Background threads (NDI, the recording, OSC out) lower their own priority: on a busy machine they,
not the drawing loop, should wait. Linux sets a nice value per thread; elsewhere this does nothing."""

from __future__ import annotations

import os
import threading

BACKGROUND_NICE = 5


def lower_priority(nice: int = BACKGROUND_NICE) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass
