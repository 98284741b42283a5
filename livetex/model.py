"""The bi-gram transition model of Contrastive Video Textures.

One backbone encodes a segment; two separate heads map it into a shared space:

    phi(V_i)  the query:  "what should come after V_i"
    psi(V_j)  the target: "what V_j looks like as a continuation"

Because phi and psi differ, sim(V_i, V_j) != sim(V_j, V_i): the model knows the arrow of time.
Training (train.py) pulls phi(V_i) towards psi(V_{i+1}) and away from every other psi(V_j), j not in {i, i+1}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone


def _head(cin: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cin), nn.ReLU(inplace=True), nn.Linear(cin, dim))


class BigramModel(nn.Module):
    """Backbone + query head phi + target head psi. Clips are (B, 3, T, H, W) floats in [0, 1]."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.backbone = build_backbone(cfg["backbone"], cfg)
        self.phi = _head(self.backbone.out_dim, cfg["dim"])
        self.psi = _head(self.backbone.out_dim, cfg["dim"])

    def forward(self, clips: torch.Tensor, head: str | None = None):
        """L2-normalised embeddings (B, dim): (phi, psi), or only the ``head`` asked for."""
        h = self.backbone(clips)
        if head is not None:
            return F.normalize(getattr(self, head)(h), dim=-1)
        return F.normalize(self.phi(h), dim=-1), F.normalize(self.psi(h), dim=-1)


class ExportedEncoder(nn.Module):
    """What goes into the bundle's ONNX file: raw thumbnail clips in, (phi, psi) out.

    Input ``clip``: (B, T, H, W, 3) float32 pixel values 0..255, T and H, W as in the manifest's
    ``fit.frames`` / ``fit.size``. Resizing from the bundle's thumbnails is part of the graph.
    """

    def __init__(self, model: BigramModel, size: int, thumb: int):
        super().__init__()
        if thumb % size:
            raise ValueError(f"thumbnail side {thumb} must be a multiple of the training size {size}")
        self.model, self.size, self.k = model, size, thumb // size

    def forward(self, clip: torch.Tensor):
        b, t, h, w, c = clip.shape
        x = clip.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w)
        if self.k > 1:  # the same integer-factor area resize + rounding as training's frame cache
            x = F.avg_pool2d(x, self.k).round()
        x = x / 255.0
        x = x.reshape(b, t, c, self.size, self.size).permute(0, 2, 1, 3, 4)
        return self.model(x)
