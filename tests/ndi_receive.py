"""Test helper: receive an NDI source for a while and save the frames (RGB) to an .npy file.

    python tests/ndi_receive.py NAME SECONDS OUT.npy

Run as its own process by test_vj.py: cyndilib waits for frames holding the GIL, which would stall
the test's MIDI clock thread. Frames are taken through NDI's frame synchroniser, polled every 5 ms
and kept when their timestamp is new (on this busy 2-core machine, the plain capture call returned
a quarter of the frames NDI said it had received). Prints "found <source>", exits 3 if it is not found.
"""

import sys
import time

import numpy as np


def main() -> int:
    name, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    from cyndilib.finder import Finder
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat
    finder = Finder()
    finder.open()
    src = None
    deadline = time.time() + 15
    while src is None and time.time() < deadline:
        finder.wait_for_sources(0.5)
        src = next((n for n in finder.get_source_names() if f"({name})" in n), None)
    if src is None:
        print(f"not found: {finder.get_source_names()}", flush=True)
        return 3
    print(f"found {src}", flush=True)
    recv = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
    vf = VideoFrameSync()
    recv.frame_sync.set_video_frame(vf)
    recv.set_source(finder.get_source(src))
    frames, last = [], None
    t_end = time.time() + seconds
    while time.time() < t_end:
        recv.frame_sync.capture_video()
        ts = vf.get_timestamp_posix()
        if vf.xres > 0 and ts != last:
            last = ts
            frames.append(np.asarray(vf.get_array()).reshape(vf.yres, vf.xres, 4)[..., :3].copy())
        time.sleep(0.005)
    recv.disconnect()
    finder.close()
    np.save(out, np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
