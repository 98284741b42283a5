"""The pyglet window: draws output frame ``n`` when the master clock reaches ``n / fps``.

The loop polls the clock instead of drawing on the display's refresh, so a 25 fps texture plays at
25 fps on a 60 Hz or a 144 Hz screen, and with a song it follows the sound card's clock. It never waits
for a frame: if the frame due is not decoded yet it keeps the previous picture and counts a drop; if the
loop itself woke up too late for some frames, they are skipped and counted.

Frames go to one texture (``glTexSubImage2D``, no allocation per frame) drawn by a sprite scaled to
fit the window (letterboxed; pixel-exact when the window has the frame store's size).
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..errors import LivetexError
from .actions import KEY_HELP

HUD_LINES = 5
HUD_PERIOD_S = 0.25      # HUD text is re-laid out at most this often (text layout is not free)
MAX_SLEEP_S = 0.008      # longest sleep of the loop: keys stay responsive, few wake-ups on a busy CPU

LINE_H = 17


def open_window(size: tuple[int, int], fullscreen: bool, headless: bool, caption: str = "livetex",
                screen: int | None = None):
    """A pyglet window with an 8-bit RGBA double-buffered config (so pixels read back exactly).

    ``screen``: index of the monitor for the window and fullscreen (e.g. the projector); None: default.
    """
    import pyglet
    pyglet.options["debug_gl"] = False          # a glGetError after every call costs real time
    if headless:
        pyglet.options["headless"] = True
    elif not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and os.name == "posix" \
            and not _is_macos():
        raise LivetexError("cannot open a window: no display (DISPLAY is not set); use --headless to render "
                           "off-screen, or run under Xvfb")
    try:
        import pyglet.window  # noqa: F401  (the display connection is made here)
        from pyglet import gl
    except Exception as e:
        raise LivetexError(f"cannot open a window: {e}") from None
    w, h = size
    kw = dict(width=w, height=h, caption=caption, resizable=not headless, vsync=not headless, visible=True)
    if screen is not None and not headless:
        try:
            screens = pyglet.display.get_display().get_screens()
        except Exception as e:
            raise LivetexError(f"cannot list the screens: {e}") from None
        if not 0 <= screen < len(screens):
            listing = "; ".join(f"{i}: {s.width}x{s.height} at {s.x},{s.y}" for i, s in enumerate(screens))
            raise LivetexError(f"no screen {screen}; screens: {listing}")
        kw["screen"] = screens[screen]
    last = None
    for cfg in (gl.Config(red_size=8, green_size=8, blue_size=8, alpha_size=8, double_buffer=True),
                gl.Config(double_buffer=True), None):
        try:
            win = pyglet.window.Window(config=cfg, **kw) if cfg is not None else pyglet.window.Window(**kw)
            break
        except pyglet.window.NoSuchConfigException as e:
            last = e
        except Exception as e:  # no display, no GL, no EGL
            raise LivetexError(f"cannot open a window: {type(e).__name__}: {e}") from None
    else:
        raise LivetexError(f"cannot open a window: no usable OpenGL configuration ({last})")
    if fullscreen and not headless:
        win.set_fullscreen(True, screen=kw.get("screen"))
    return win


def _is_macos() -> bool:
    import sys
    return sys.platform == "darwin"


def _frame_sprite_class():
    """A sprite drawn without blending: the frame is opaque, and with a software GL (llvmpipe)
    blending would read back every destination pixel for nothing."""
    import pyglet
    from pyglet import gl

    class OpaqueGroup(pyglet.sprite.SpriteGroup):
        def set_state(self):
            self.program.use()
            gl.glActiveTexture(gl.GL_TEXTURE0)
            gl.glBindTexture(self.texture.target, self.texture.id)

        def unset_state(self):
            self.program.stop()

    class FrameSprite(pyglet.sprite.Sprite):
        group_class = OpaqueGroup

    return FrameSprite


class PlayerWindow:
    """Owns the pyglet window, the frame texture, the HUD and the key bindings.

    ``status()`` (a callable) returns the audio status line for the HUD.
    """

    def __init__(self, window, store_size, fps: float, n_source: int, controls, stats, prefetcher, clock,
                 status=lambda: "", headless: bool = False, actions=None, sinks=(), outputs=(), bank=None):
        import pyglet
        from pyglet import gl
        self.pyglet, self.gl = pyglet, gl
        self.win = window
        self.fps = float(fps)
        self.n_source = int(n_source)
        self.controls, self.stats, self.prefetcher, self.clock = controls, stats, prefetcher, clock
        self.bank = bank                   # a clip bank (bank.py) gives the frames instead of one prefetcher
        self.status = status
        if actions is None:
            from .actions import Actions
            from .tempo import TempoClock
            actions = Actions(controls, TempoClock(), stats)
        self.actions, self.tempo = actions, actions.tempo
        # Where every output frame slot also goes (NDI, the recording): ``sink.frame(n, rgb)`` must
        # not block; a frame slot with no new picture repeats the last one, as the screen does.
        self.sinks = list(sinks)
        self._last_rgb = None
        self.outputs = list(outputs)       # callables -> a short state line each for the HUD (MIDI, NDI, REC)
        self.headless = headless
        self.tw, self.th = store_size
        self.tex = pyglet.image.Texture.create(self.tw, self.th, internalformat=gl.GL_RGB8)
        region = self.tex.get_transform(flip_y=True)          # rows arrive top-down (numpy order)
        region.anchor_x = region.anchor_y = 0
        self.batch = pyglet.graphics.Batch()
        self.hud_batch = pyglet.graphics.Batch()
        self.sprite = _frame_sprite_class()(region, batch=self.batch)
        self.sprite.visible = False                            # until the first frame is uploaded
        self._filter = None
        self.cur_src = -1
        self.shown_n = -1
        self._hud_t = 0.0
        self._hud_version = -1
        self._dirty = True
        self._make_hud()
        self._layout()
        self.win.push_handlers(on_key_press=self.on_key_press, on_resize=self.on_resize)

    # ---- layout
    def _fb_size(self) -> tuple[int, int]:
        try:
            return self.win.get_framebuffer_size()
        except Exception:
            return self.win.width, self.win.height

    def _layout(self) -> None:
        W, H = self.win.width, self.win.height
        s = min(W / self.tw, H / self.th)
        w, h = self.tw * s, self.th * s
        self.sprite.update(x=(W - w) / 2, y=(H - h) / 2, scale=s)
        # The picture covers the window (no letterbox bars): no need to clear it every frame.
        self._covers = w >= W - 0.5 and h >= H - 0.5
        gl = self.gl
        filt = gl.GL_NEAREST if abs(s - 1.0) < 1e-6 else gl.GL_LINEAR    # 1:1 must be pixel-exact
        if filt != self._filter:
            gl.glBindTexture(self.tex.target, self.tex.id)
            gl.glTexParameteri(self.tex.target, gl.GL_TEXTURE_MIN_FILTER, filt)
            gl.glTexParameteri(self.tex.target, gl.GL_TEXTURE_MAG_FILTER, filt)
            self._filter = filt
        self.bar_bg.x, self.bar_bg.y, self.bar_bg.width = 0, 0, W
        self.bar_mark.y = 0
        self.hud_bg.y = H - self.hud_bg.height
        for i, lab in enumerate(self.labels):
            lab.x, lab.y = 8, H - 6 - LINE_H * i
        self._dirty = True

    def on_resize(self, width, height):
        self._layout()

    def _make_hud(self) -> None:
        p = self.pyglet
        b = self.hud_batch
        self.hud_bg = p.shapes.Rectangle(0, 0, 400, HUD_LINES * LINE_H + 10, color=(0, 0, 0, 160), batch=b)
        self.labels = [p.text.Label("", font_size=10 if i < HUD_LINES - 1 else 8, x=8, y=0, anchor_y="top",
                                    color=(255, 255, 255, 255) if i < HUD_LINES - 1 else (200, 200, 200, 255),
                                    batch=b)
                       for i in range(HUD_LINES)]
        self.bar_bg = p.shapes.Rectangle(0, 0, 10, 6, color=(90, 90, 90, 200), batch=b)
        self.bar_mark = p.shapes.Rectangle(0, 0, 6, 6, color=(255, 200, 0, 255), batch=b)

    def _update_hud(self, now: float) -> None:
        if now - self._hud_t < HUD_PERIOD_S and self._hud_version == self.controls.version:
            return
        self._hud_t, self._hud_version = now, self.controls.version
        st, c = self.stats, self.controls
        span = (st.last_frame_t - st.first_frame_t) if st.first_frame_t is not None else 0
        fps = (st.frames_shown + st.frozen_frames - 1) / span if span > 0 else 0.0
        lat = st.latency_s.recent(200)
        lat_txt = (f"audio latency {np.percentile(lat, 50) * 1000:.0f}/{np.percentile(lat, 99) * 1000:.0f} ms"
                   if lat else "")
        flags = "  FROZEN" if c.freeze else ""
        flags += "  PAUSED" if c.paused else ""
        self.labels[0].text = (f"{fps:4.1f} fps (source {self.fps:g})  dropped {st.dropped_late + st.dropped_not_ready}"
                               f"  {lat_txt}{flags}")
        self.labels[1].text = (f"tau {c.temperature:.3g}  alpha {c.alpha:.2f}  threshold {c.threshold:.2f}  "
                               f"jumps {st.jumps}/{st.decisions}  frame {max(self.cur_src, 0)}/{self.n_source}")
        self.labels[2].text = self.status()
        tp = self.tempo.snapshot()
        beat = "*" if tp["phase"] < 0.2 else "."
        self.labels[3].text = "  ".join([f"{tp['bpm']:.1f} bpm ({tp['source']})  beat {tp['bar_beat']} {beat}"]
                                        + [t for t in (f() for f in self.outputs) if t])
        self.labels[4].text = KEY_HELP
        W = self.win.width
        self.hud_bg.width = min(W, 16 + max(lab.content_width for lab in self.labels))
        self.bar_mark.x = (max(self.cur_src, 0) / max(1, self.n_source - 1)) * (W - self.bar_mark.width)
        self._dirty = True

    def prewarm(self) -> None:
        """Lay out and draw the HUD once before the clock starts: the first text layout loads fonts,
        which takes long enough to drop frames if it happened while playing."""
        self._update_hud(time.perf_counter())
        self.win.switch_to()
        self.win.clear()
        self.hud_batch.draw()
        self.win.flip()
        self._hud_t = 0.0

    # ---- keys
    def on_key_press(self, symbol, modifiers):
        name = self.pyglet.window.key.symbol_string(symbol)
        if self.actions.key(name) is None:
            return None
        return True   # handled: stops pyglet's default (Esc would close the window behind our back)

    # ---- drawing
    def upload(self, rgb: np.ndarray) -> None:
        gl = self.gl
        rgb = np.ascontiguousarray(rgb, np.uint8)
        if rgb.shape != (self.th, self.tw, 3):
            raise ValueError(f"frame of shape {rgb.shape} does not fit the {self.tw}x{self.th} texture")
        gl.glBindTexture(self.tex.target, self.tex.id)
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        gl.glTexSubImage2D(self.tex.target, 0, 0, 0, self.tw, self.th, gl.GL_RGB, gl.GL_UNSIGNED_BYTE,
                           rgb.ctypes.data)
        self.sprite.visible = True

    def draw(self) -> None:
        self.win.switch_to()
        if not (self._covers and self.sprite.visible):
            self.win.clear()
        self.batch.draw()
        if self.controls.hud:
            self.hud_batch.draw()

    def read_pixels(self) -> np.ndarray:
        """The back buffer as RGB (H, W, 3) uint8, top row first (call after draw, before flip)."""
        gl = self.gl
        w, h = self._fb_size()
        buf = (gl.GLubyte * (w * h * 4))()
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        gl.glReadBuffer(gl.GL_BACK)
        gl.glReadPixels(0, 0, w, h, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, buf)
        return np.frombuffer(buf, np.uint8).reshape(h, w, 4)[::-1, :, :3].copy()

    def screenshot(self, path: str) -> dict:
        """Redraw the current picture and save it as PNG; returns what it shows."""
        import cv2
        self.draw()
        img = self.read_pixels()
        d = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(d, f".{os.path.basename(path)}.tmp-{os.getpid()}.png")
        if not cv2.imwrite(tmp, cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise LivetexError(f"cannot write screenshot {path}")
        os.replace(tmp, path)
        info = {"path": os.path.abspath(path), "output_frame": self.shown_n, "source_frame": int(self.cur_src),
                "hud": bool(self.controls.hud), "size": [img.shape[1], img.shape[0]]}
        self.stats.event(f"screenshot saved: {path} (output frame {self.shown_n}, source frame {self.cur_src})",
                         echo=True)
        return info

    def _actions(self) -> None:
        c = self.controls
        while True:
            try:
                act = c.actions.get_nowait()
            except Exception:
                return
            if act[0] == "screenshot":
                try:
                    self.screenshot(act[1])
                except LivetexError as e:
                    self.stats.event(str(e))
            elif act[0] == "fullscreen" and not self.headless:
                self.win.set_fullscreen(c.fullscreen, screen=self.win.screen if c.fullscreen else None)
                self._layout()

    def _send(self, n: int, rgb: np.ndarray) -> None:
        for sink in self.sinks:
            sink.frame(n, rgb)

    # ---- the loop
    def run(self, should_stop) -> None:
        """Draw until ``should_stop(clock_time)`` is true, the window closes, or quit is asked."""
        st, c, clock, fps = self.stats, self.controls, self.clock, self.fps
        paused = False
        seen = -1
        while True:
            self.win.dispatch_events()
            if self.win.has_exit or c.quit:
                return
            self._actions()
            if c.version != seen:           # a knob moved: the HUD (or its absence) must be redrawn
                seen = c.version
                self._dirty = True
            if c.paused != paused:
                paused = c.paused
                clock.set_paused(paused)
            now = clock.now()
            if should_stop(now):
                return
            n = int(now * fps + 1e-9)
            wall = time.perf_counter()
            if n > self.shown_n:
                skipped = n - self.shown_n - 1 if self.shown_n >= 0 else 0
                if self._last_rgb is not None:
                    for m in range(self.shown_n + 1, n):     # slots the loop slept through: the old picture
                        self._send(m, self._last_rgb)
                item = self.prefetcher.take(n) if self.bank is None else self.bank.take(n)
                if c.freeze:
                    st.frozen_frames += n - max(self.shown_n, -1)
                    if st.first_frame_t is not None:
                        st.last_frame_t = n / fps
                else:
                    st.dropped_late += skipped
                    if item is None:
                        st.dropped_not_ready += 1
                    else:
                        src, rgb = item
                        self.upload(rgb)
                        self._last_rgb = rgb
                        self.cur_src = src
                        st.frames_shown += 1
                        st.shown_src.append(int(src))
                        if st.shown_clip is not None:
                            st.shown_clip.append(self.bank.last_clip if self.bank is not None else 0)
                        t_shown = n / fps
                        if st.first_frame_t is None:
                            st.first_frame_t = t_shown
                        st.last_frame_t = t_shown
                self.shown_n = n
                if self._last_rgb is not None:
                    self._send(n, self._last_rgb)
                if c.hud:
                    self._update_hud(wall)
                self.draw()
                self.win.flip()
                st.draw_s.append(time.perf_counter() - wall)
                self._dirty = False
            elif c.hud or self._dirty:
                if c.hud:
                    self._update_hud(wall)
                if self._dirty:
                    self.draw()
                    self.win.flip()
                    self._dirty = False
            left = (self.shown_n + 1) / fps - clock.now()
            if left > 0:
                time.sleep(min(left, MAX_SLEEP_S))
