"""Segment geometry: W = 0.5 s, s = 0.2 s in frames and samples for the common frame rates."""

from fractions import Fraction

import numpy as np
import pytest

from livetex.errors import LivetexError
from livetex.segments import make_segments, segments_from_dict
from livetex.timeline import frames_from_steps, jumps_from_frames, steps_for

NTSC = float(Fraction(30000, 1001))

# fps -> (window frames, stride frames): 0.5 s and 0.2 s rounded half-up to whole frames.
EXPECTED = {24.0: (12, 5), 25.0: (13, 5), NTSC: (15, 6), 30.0: (15, 6), 60.0: (30, 12)}


@pytest.mark.parametrize("fps", list(EXPECTED))
def test_window_and_stride_frames(fps):
    seg = make_segments(1000, fps)
    assert (seg.window_frames, seg.stride_frames) == EXPECTED[fps]
    assert seg.fps == fps and seg.n_frames == 1000


@pytest.mark.parametrize("fps", list(EXPECTED))
@pytest.mark.parametrize("n", [None, 1, 7, 300])   # frames beyond one window (None: exactly one window)
def test_count_and_ranges(fps, n):
    W, S = EXPECTED[fps]
    n_frames = W if n is None else W + n
    seg = make_segments(n_frames, fps)
    assert seg.count == (n_frames - W) // S + 1
    assert len(seg.starts) == seg.count
    for i in range(seg.count):
        a, b = seg.frame_range(i)
        assert (a, b) == (i * S, i * S + W) and b <= n_frames
        ta, tb = seg.tail_range(i)
        assert (ta, tb) == (b - S, b)
    # The next segment would run past the last frame.
    assert seg.count * S + W > n_frames
    with pytest.raises(IndexError):
        seg.frame_range(seg.count)
    with pytest.raises(IndexError):
        seg.frame_range(-1)


@pytest.mark.parametrize("fps", list(EXPECTED))
def test_tails_continue_previous_segment_exactly(fps):
    seg = make_segments(int(20 * fps), fps)
    for i in range(seg.count - 1):
        assert seg.tail_range(i + 1)[0] == seg.frame_range(i)[1]
        assert seg.tail_range(i + 1)[1] - seg.tail_range(i + 1)[0] == seg.stride_frames
    # An unbroken walk 0, 1, 2, ... replays the source frame for frame, with no jumps.
    steps = list(range(seg.count))
    n_out = seg.window_frames + seg.stride_frames * (seg.count - 1)
    frames, jumps = frames_from_steps(seg, steps, n_out)
    np.testing.assert_array_equal(frames, np.arange(n_out))
    assert jumps == [] and jumps_from_frames(frames) == []
    assert steps_for(seg, n_out) == seg.count - 1


@pytest.mark.parametrize("fps", list(EXPECTED))
@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_sample_ranges(fps, sr):
    seg = make_segments(int(20 * fps), fps)
    n = seg.window_samples(sr)
    assert abs(n - 0.5 * sr) <= sr / fps          # the window in samples is the window in frames
    prev_tail_end = None
    for i in range(seg.count):
        a, b = seg.sample_range(i, sr)
        fa, fb = seg.frame_range(i)
        # Sample 0 is frame 0: a segment's audio starts where its first frame starts.
        assert abs(a - fa * sr / fps) <= 0.5 and abs(b - fb * sr / fps) <= 0.5
        assert abs((b - a) - n) <= 1
        # The audio of a tail starts where the previous segment's audio ended: no gap, no overlap.
        ta = int(np.floor(seg.tail_range(i)[0] * sr / fps + 0.5))
        if prev_tail_end is not None:
            assert ta == prev_tail_end
        prev_tail_end = b


def test_segment_of_frame_inverts_tails():
    seg = make_segments(300, 30.0)
    for i in range(seg.count):
        for f in range(*seg.tail_range(i)):
            assert seg.segment_of_frame(f) == i
    assert seg.segment_of_frame(0) == 0
    assert seg.segment_of_frame(10 ** 6) == seg.count - 1


def test_too_short_is_a_clear_error():
    with pytest.raises(LivetexError, match="too short"):
        make_segments(12, 25.0)                    # one 0.5 s window needs 13 frames at 25 fps
    assert make_segments(13, 25.0).count == 1
    with pytest.raises(LivetexError, match="too short"):
        make_segments(0, 30.0)


@pytest.mark.parametrize("fps", [0, -25, float("nan"), float("inf")])
def test_bad_frame_rate(fps):
    with pytest.raises(LivetexError):
        make_segments(100, fps)


def test_bad_window_stride():
    with pytest.raises(LivetexError):
        make_segments(100, 25.0, window=0.2, stride=0.5)
    with pytest.raises(LivetexError):
        make_segments(100, 25.0, stride=0)


def test_very_low_frame_rate_still_overlaps():
    # At 2 fps the 0.2 s stride rounds to 0 frames: it is clamped to 1, the window kept longer.
    seg = make_segments(20, 2.0)
    assert seg.stride_frames == 1 and seg.window_frames == 2 and seg.count == 19


def test_dict_round_trip():
    seg = make_segments(500, NTSC)
    back = segments_from_dict(seg.to_dict(), seg.n_frames, seg.fps)
    assert back == seg
