"""Video backbones by name: ``build_backbone("tiny3d", cfg)`` returns an nn.Module mapping a clip
(B, 3, T, H, W) float in [0, 1] to features (B, F) and carrying ``out_dim``.

The default, ``tiny3d``, is trained from scratch per video and fits a 2-core CPU. ``x3d_xs`` and
``x3d_s`` wrap pytorchvideo's X3D with Kinetics-400 weights read from a local checkpoint; pytorchvideo is
imported only in livetex/_x3d.py.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .errors import LivetexError

_BACKBONES: dict[str, Callable[[dict], nn.Module]] = {}


def register_backbone(name: str):
    def deco(fn):
        _BACKBONES[name] = fn
        return fn
    return deco


def backbone_names() -> list[str]:
    return sorted(_BACKBONES)


def build_backbone(name: str, cfg: dict) -> nn.Module:
    if name not in _BACKBONES:
        raise LivetexError(f"unknown backbone {name!r}; choose from: {', '.join(backbone_names())}")
    return _BACKBONES[name](cfg)


def _block(cin: int, cout: int, k, s, p) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, k, s, p, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class Tiny3D(nn.Module):
    """Three 3D conv blocks, then a linear layer over the *spatial grid* (not a global pool): where the
    performer's hands are matters as much as what they look like.

    Frame differences are fed as extra channels because a net this small learns motion direction (the
    arrow of time) far faster when it does not have to discover subtraction first.
    """

    def __init__(self, size: int = 32, frames: int = 8, width: int = 16, features: int = 256, diff: bool = True):
        super().__init__()
        self.diff = diff
        cin = 6 if diff else 3
        self.convs = nn.Sequential(
            _block(cin, width, (3, 5, 5), (1, 2, 2), (1, 2, 2)),
            _block(width, 2 * width, 3, 2, 1),
            _block(2 * width, 4 * width, 3, 2, 1),
        )
        with torch.no_grad():
            n = self.convs(torch.zeros(1, cin, frames, size, size)).numel()
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(n, features), nn.ReLU(inplace=True))
        self.out_dim = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2.0 - 1.0
        if self.diff:
            d = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
            x = torch.cat([x, d], dim=1)
        return self.fc(self.convs(x))


@register_backbone("tiny3d")
def tiny3d(cfg: dict) -> nn.Module:
    return Tiny3D(cfg["size"], cfg["frames"], cfg.get("width", 16), cfg.get("features", 256), cfg.get("diff", True))


@register_backbone("x3d_xs")
def x3d_xs(cfg: dict) -> nn.Module:
    from ._x3d import build_x3d
    return build_x3d("x3d_xs", cfg)


@register_backbone("x3d_s")
def x3d_s(cfg: dict) -> nn.Module:
    from ._x3d import build_x3d
    return build_x3d("x3d_s", cfg)
