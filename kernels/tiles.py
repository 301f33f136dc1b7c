"""Temporal tiles: decode (or process) a long clip as overlapping windows of frames, cross-faded where they meet.

Why: SVD's VAE decoder mixes neighbouring frames (3-tap temporal convolutions in every res-block), so a clip
must reach it as a video, and all of its frames at once cost memory in proportion to their number (about
0.45 GiB per 512² frame in bf16). SVD's own sampling scripts decode `decoding_t` frames at a time, and
ComfyUI's VAE Decode splits the batch wherever its memory estimate says, each piece a separate video: both
leave a seam (a jump in the temporal context) between pieces. Here consecutive windows share frames, and
across the shared frames the result fades linearly from one window's decode to the next one's.

Windows: the fewest windows of `tile` frames with at least `overlap` shared frames between neighbours, the
first starting at frame 0, the last ending at the last frame, starts spread evenly in between.
Weights: inside a window 1, except on the frames it shares with a neighbour, where it ramps linearly from
1/(L+1) to L/(L+1) (L shared frames) towards its own side; each frame's output is the weighted mean of the
windows that hold it, so a frame held by one window is that window's decode exactly.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def temporal_tiles(frames: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows of `tile` frames covering range(frames); neighbours share ≥ `overlap` frames."""
    if frames < 1 or tile < 1:
        raise ValueError(f"need at least one frame and one frame per tile, got frames={frames}, tile={tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be between 0 and tile - 1 ({tile - 1}), got {overlap}")
    if tile >= frames:
        return [(0, frames)]
    count = math.ceil((frames - overlap) / (tile - overlap))
    span = frames - tile  # the last window's start
    starts = [round(i * span / (count - 1)) for i in range(count)]
    return [(s, s + tile) for s in starts]


def tile_weights(tiles: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Per window, the weight of each of its frames (float64): linear ramps over the frames shared with a
    neighbour, 1 elsewhere."""
    out = []
    for k, (start, end) in enumerate(tiles):
        w = torch.ones(end - start, dtype=torch.float64)
        if k > 0:
            shared = max(0, tiles[k - 1][1] - start)
            w[:shared] *= torch.arange(1, shared + 1, dtype=torch.float64) / (shared + 1)
        if k + 1 < len(tiles):
            shared = max(0, end - tiles[k + 1][0])
            if shared:
                w[-shared:] *= torch.arange(shared, 0, -1, dtype=torch.float64) / (shared + 1)
        out.append(w)
    return out


def blend_tiles(frames: int, tiles: list[tuple[int, int]],
                decode: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """Run `decode(start, end)` (→ a tensor whose first axis holds the window's frames) on every window and
    cross-fade the results into one tensor of `frames` frames."""
    out = total = None
    for (start, end), w in zip(tiles, tile_weights(tiles)):
        y = decode(start, end)
        if y.shape[0] != end - start:
            raise ValueError(f"decoding frames {start}..{end - 1} gave {y.shape[0]} frames, expected {end - start}")
        if out is None:
            out = torch.zeros((frames, *y.shape[1:]), dtype=y.dtype, device=y.device)
            total = torch.zeros(frames, dtype=torch.float64)
        wy = w.to(device=y.device, dtype=y.dtype).view(-1, *[1] * (y.ndim - 1))
        out[start:end] += y * wy
        total[start:end] += w
    if total is None or not bool((total > 0).all()):
        raise ValueError("the windows do not cover every frame")
    return out / total.to(device=out.device, dtype=out.dtype).view(-1, *[1] * (out.ndim - 1))
