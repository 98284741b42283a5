"""Optional VGGish (Hershey et al. 2017), the audio encoder the paper used, from a weights file you supply.

livetex never downloads weights. Point ``LIVETEX_VGGISH`` at a PyTorch state dict in the layout of
harritaylor/torchvggish (``vggish-10086976.pth``: keys ``features.{0,3,6,8,11,13}.{weight,bias}`` and
``embeddings.{0,2,4}.{weight,bias}``; other keys such as ``pproc.*`` are ignored), or put it at
``~/.cache/livetex/vggish.pth``. The 128-d raw embedding (before the PCA/quantisation post-processing)
is used, compared like every embedding here.

Input framing follows VGGish: 16 kHz, 25 ms periodic-Hann windows every 10 ms, 512-point FFT magnitude,
64 HTK-mel bands 125-7500 Hz, log(mel + 0.01), 96 frames (0.96 s) per example. A 0.5 s segment is
embedded from the 0.975 s of audio that *ends* where its window ends (``CONTEXT`` samples, zero-padded
before the start), so the query for step k still ends where step k's frames end.

Offline only (torch): the player uses ``features`` or ``av``.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import LivetexError

SR = 16000
WIN, HOP, N_FFT, N_MELS, N_FRAMES = 400, 160, 512, 64, 96
CONTEXT = WIN + HOP * (N_FRAMES - 1)      # 15600 samples = 0.975 s
DIM = 128
ENV = "LIVETEX_VGGISH"
DEFAULT_PATH = os.path.join(os.path.expanduser("~"), ".cache", "livetex", "vggish.pth")


def weights_path() -> str | None:
    p = os.environ.get(ENV) or (DEFAULT_PATH if os.path.isfile(DEFAULT_PATH) else None)
    return p


def _mel_matrix() -> np.ndarray:
    hz2mel = lambda f: 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)  # noqa: E731
    bins = hz2mel(np.linspace(0.0, SR / 2, N_FFT // 2 + 1))
    edges = np.linspace(hz2mel(125.0), hz2mel(7500.0), N_MELS + 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(0.0, np.minimum((bins[:, None] - lo) / (mid - lo), (hi - bins[:, None]) / (hi - mid)))
    w[0] = 0.0
    return w.astype(np.float32)


_MEL = _mel_matrix()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)).astype(np.float32)


def examples(windows: np.ndarray) -> np.ndarray:
    """(B, CONTEXT) samples at 16 kHz -> (B, 1, 96, 64) log-mel examples, as VGGish expects."""
    import scipy.fft
    w = np.ascontiguousarray(windows, np.float32)
    B = len(w)
    s0, s1 = w.strides
    frames = np.lib.stride_tricks.as_strided(w, (B, N_FRAMES, WIN), (s0, HOP * s1, s1), writeable=False)
    mag = np.abs(scipy.fft.rfft(frames * _HANN, N_FFT, axis=-1)).astype(np.float32)
    return np.log(mag @ _MEL + 0.01).astype(np.float32)[:, None]


def build():
    """The VGGish network (torch), untrained."""
    from torch import nn

    layers, c = [], 1
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v

    class VGGish(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                            nn.ReLU(True), nn.Linear(4096, DIM), nn.ReLU(True))

        def forward(self, x):
            x = self.features(x)                       # (B, 512, 6, 4)
            x = x.permute(0, 2, 3, 1).reshape(len(x), -1)   # TF's channels-last flattening order
            return self.embeddings(x)

    return VGGish()


class VGGishEncoder:
    """Windows (B, CONTEXT) -> (B, 128) unit-norm VGGish embeddings."""

    def __init__(self, path: str):
        import torch
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a wrong or damaged file: say which
            raise LivetexError(f"cannot read VGGish weights {path}: {e}") from None
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        net = build()
        want = net.state_dict()
        sd = {k: v for k, v in sd.items() if k in want}
        missing = [k for k in want if k not in sd]
        bad = [k for k in sd if tuple(sd[k].shape) != tuple(want[k].shape)]
        if missing or bad:
            what = "missing " + ", ".join(missing[:3]) if missing else "wrong shape for " + ", ".join(bad[:3])
            raise LivetexError(f"{path} is not a VGGish state dict (torchvggish layout): {what}")
        net.load_state_dict(sd)
        self.net = net.eval()
        self.torch = torch

    def embed(self, windows: np.ndarray) -> np.ndarray:
        x = self.torch.from_numpy(examples(windows))
        with self.torch.no_grad():
            e = self.net(x).numpy()
        return (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8)).astype(np.float32)


def load(path: str | None = None) -> VGGishEncoder:
    """The VGGish encoder from ``path`` (default: $LIVETEX_VGGISH or ~/.cache/livetex/vggish.pth)."""
    path = path or weights_path()
    if not path:
        raise LivetexError(f"--audio-model vggish needs the VGGish weights, which livetex never downloads: get "
                           f"vggish-10086976.pth (harritaylor/torchvggish releases) and set {ENV}=/path/to/it "
                           f"(or copy it to {DEFAULT_PATH}); or use --audio-model features or av")
    if not os.path.isfile(path):
        raise LivetexError(f"VGGish weights not found: {path} (from {ENV})")
    return VGGishEncoder(path)
