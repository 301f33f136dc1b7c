"""Frame-aware keys and values for self-attention over a batch of video frames.

Shapes: attention inputs arrive as `(chunks·F, N, C)` — `chunks` equal groups (uncond / cond / …) of F
frames each, N tokens per frame, C channels (or several trailing axes, e.g. `(chunks·F, N, heads, head dim)`:
only the frame and token axes are read). Every function here keeps chunks apart: a frame only ever
sees frames of its own chunk.

Both techniques only change what self-attention reads as keys/values; queries stay per frame:
- Text2Video-Zero cross-frame attention (`cross_frame_kv`): K/V from anchor frames.
- ZS² temporal momentum attention (`momentum_kv`): K/V from an EMA over frames.
The key/value projections are bias-free linear maps, so transforming the normed hidden states before
projection is exactly the same as transforming K and V after it.
"""
from __future__ import annotations

import torch

# anchor mode -> the frames whose tokens each frame reads, in order
ANCHORS = {"first": ("first",), "previous": ("previous",), "first+previous": ("first", "previous"),
           "first+self": ("first", "self")}
ANCHOR_MODES = tuple(ANCHORS)


def split_frames(x: torch.Tensor, chunks: int) -> torch.Tensor:
    """`(chunks·F, N, C)` → `(chunks, F, N, C)` (a view)."""
    if chunks < 1 or x.shape[0] % chunks:
        raise ValueError(f"batch {x.shape[0]} does not split into {chunks} equal chunks")
    return x.view(chunks, x.shape[0] // chunks, *x.shape[1:])


def merge_frames(x: torch.Tensor) -> torch.Tensor:
    """`(chunks, F, N, C)` → `(chunks·F, N, C)`."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def anchor_index(anchor: str, frames: int, device=None) -> torch.Tensor:
    """Index of the frame that each of `frames` frames reads for one anchor ("first", "previous", "self")."""
    ar = torch.arange(frames, device=device)
    if anchor == "first":
        return torch.zeros_like(ar)
    if anchor == "previous":
        return (ar - 1).clamp(min=0)
    if anchor == "self":
        return ar
    raise ValueError(f"unknown anchor {anchor!r}")


def cross_frame_kv(x: torch.Tensor, chunks: int, mode: str = "first",
                   first: torch.Tensor | None = None) -> torch.Tensor:
    """Keys/values for cross-frame attention.

    x: `(chunks·F, N, C)` hidden states. Returns `(chunks·F, A·N, C)` where A is the number of anchors of
    `mode` (1 or 2): for frame f, the tokens of its anchor frames, concatenated along the token axis.
    `first`: optional `(chunks, N, C)` states (the trailing axes of `x`) to use as the "first" anchor instead of
    frame 0 of `x`
    (the global first frame when `x` is only a window of the video).
    """
    if mode not in ANCHORS:
        raise ValueError(f"unknown anchor mode {mode!r}; choose one of {', '.join(ANCHOR_MODES)}")
    xf = split_frames(x, chunks)
    frames = xf.shape[1]
    parts = []
    for anchor in ANCHORS[mode]:
        if anchor == "first" and first is not None:
            parts.append(first.to(x.dtype).unsqueeze(1).expand(-1, frames, *first.shape[1:]))
        else:
            parts.append(xf.index_select(1, anchor_index(anchor, frames, x.device)))
    kv = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    return merge_frames(kv)


def momentum_kv(x: torch.Tensor, chunks: int, mu: float, anchor_mix: float = 0.0) -> torch.Tensor:
    """ZS² temporal momentum: the EMA of the hidden states over frames, per chunk.

    `m_0 = x_0`, `m_a = mu·m_{a-1} + (1 − mu)·x_a` as an O(F) scan (no F×F matrix). μ = 1 gives frame 0
    everywhere (cross-frame attention to the first frame), μ = 0 gives x itself (self-attention).
    `anchor_mix` in [0, 1] blends frame 0 back in, `(1 − β)·m_a + β·x_0`, so long clips keep the
    identity of frame 0 after the EMA has forgotten it. x: `(chunks·F, N, C)`; returns the same shape.
    """
    if not 0.0 <= mu <= 1.0:
        raise ValueError(f"momentum mu must be in [0, 1], got {mu}")
    if not 0.0 <= anchor_mix <= 1.0:
        raise ValueError(f"anchor_mix must be in [0, 1], got {anchor_mix}")
    xf = split_frames(x, chunks)
    if mu == 0.0 and anchor_mix == 0.0:
        return x
    out = torch.empty_like(xf)
    m = xf[:, 0]
    out[:, 0] = m
    for a in range(1, xf.shape[1]):
        m = mu * m + (1.0 - mu) * xf[:, a]
        out[:, a] = m
    if anchor_mix:
        out = torch.lerp(out, xf[:, :1].expand_as(out), anchor_mix)
    return merge_frames(out)
