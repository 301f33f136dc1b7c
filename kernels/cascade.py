"""ZeroSmooth (Yang et al., arXiv 2406.00908): self-cascade operators for 2× frame-rate video diffusion.

A long branch of 2K frames is corrected towards a short (key-frame) branch of K frames, stage by stage.
All operators act along one frame axis (`dim`) of a hidden-state tensor, without building matrices:
- A  (sampling): A[i, 2i] = 1. Key frame i is long frame 2i. `A h` takes the even frames; `A† k` puts the
  keys on the even frames (zeros elsewhere); the correction (I − A†A)h + A†k overwrites even frames with
  the key states and keeps the odd ones.
- A1 (pair means of (2i, 2i+1)) and A2 (pair means of (2i−1, 2i), frame 0 alone, the last frame unpaired):
  the correction (I − Aj†Aj)h + Aj†k sets every pair's mean to its key value and keeps the pair's
  difference. Aj† = 2·Ajᵀ (rows of Aj are orthogonal with norm² 1/2).
With `loop=True`, A2 pairs the last frame with frame 0 (seamless loops) instead of leaving it alone.
"""
from __future__ import annotations

import torch

OPERATORS = ("A", "A1", "A2")


def _move(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.movedim(dim, 0)


def apply_op(op: str, h: torch.Tensor, dim: int = 0, loop: bool = False) -> torch.Tensor:
    """`Op h` along `dim`: 2K frames -> K key values."""
    x = _move(h, dim)
    if x.shape[0] % 2:
        raise ValueError(f"the long branch needs an even frame count, got {x.shape[0]}")
    if op == "A":
        out = x[0::2]
    elif op == "A1":
        out = (x[0::2] + x[1::2]) / 2
    elif op == "A2":
        out = x.new_empty((x.shape[0] // 2, *x.shape[1:]))
        out[0] = (x[0] + x[-1]) / 2 if loop else x[0]
        out[1:] = (x[1:-1:2] + x[2::2]) / 2
    else:
        raise ValueError(f"unknown operator {op!r}; choose one of {', '.join(OPERATORS)}")
    return out.movedim(0, dim)


def apply_pinv(op: str, k: torch.Tensor, dim: int = 0, loop: bool = False) -> torch.Tensor:
    """`Op† k` along `dim`: K key values -> 2K frames (the minimum-norm preimage)."""
    x = _move(k, dim)
    out = x.new_zeros((2 * x.shape[0], *x.shape[1:]))
    if op == "A":
        out[0::2] = x
    elif op == "A1":
        out[0::2] = x
        out[1::2] = x
    elif op == "A2":
        if loop:
            out[0] = x[0]
            out[-1] = x[0]
        else:
            out[0] = x[0]
        out[1:-1:2] = x[1:]
        out[2::2] = x[1:]
    else:
        raise ValueError(f"unknown operator {op!r}; choose one of {', '.join(OPERATORS)}")
    return out.movedim(0, dim)


def correct(op: str, h: torch.Tensor, keys: torch.Tensor, dim: int = 0, loop: bool = False) -> torch.Tensor:
    """Hidden-state correction `(I − Op†Op) h + Op† k` along `dim` (h: 2K frames, keys: K frames).

    Evaluated in closed form, one pass over `h`: A overwrites the even frames with the keys; A1/A2 add
    `k − pair mean` to both frames of each pair (A2: frame 0 takes its key, the last frame stays unless
    `loop` pairs it with frame 0). `reference_correct` is the operator formula it must equal.
    """
    if h.shape[dim] != 2 * keys.shape[dim]:
        raise ValueError(f"long branch has {h.shape[dim]} frames, key branch {keys.shape[dim]}: expected 2×")
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {op!r}; choose one of {', '.join(OPERATORS)}")
    x, k = _move(h, dim), _move(keys, dim).to(h.dtype)
    out = x.clone()
    if op == "A":
        out[0::2] = k
    elif op == "A1":
        pairs = out.unflatten(0, (k.shape[0], 2))
        pairs += (k - pairs.mean(1)).unsqueeze(1)
    else:
        inner = out[1:-1].unflatten(0, (k.shape[0] - 1, 2))
        inner += (k[1:] - inner.mean(1)).unsqueeze(1)
        if loop:
            delta = k[0] - (x[0] + x[-1]) / 2
            out[0] += delta
            out[-1] += delta
        else:
            out[0] = k[0]
    return out.movedim(0, dim)


def reference_correct(op: str, h: torch.Tensor, keys: torch.Tensor, dim: int = 0, loop: bool = False) -> torch.Tensor:
    """`h − Op†(Op h) + Op† k` written with the operators themselves (the definition `correct` follows)."""
    return h - apply_pinv(op, apply_op(op, h, dim, loop), dim, loop) + apply_pinv(op, keys, dim, loop)


def correct_q(h: torch.Tensor, keys: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Queries (and every temporal-attention input): sampling operator A."""
    return correct("A", h, keys, dim)


def pick_pair_operator(seed: int, step: int) -> str:
    """A1 or A2 for keys/values of spatial attention: a seeded fair coin per step (the paper's `p > 0.5` with
    Gaussian p would pick A1 only ~31% of the time)."""
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) & 0xFFFFFFFFFFFF)
    return "A1" if torch.rand((), generator=g) < 0.5 else "A2"


def correct_kv(h: torch.Tensor, keys: torch.Tensor, op: str, dim: int = 0, loop: bool = False) -> torch.Tensor:
    """Keys/values of spatial attention: pair-mean interpolation operator A1 or A2."""
    if op not in ("A1", "A2"):
        raise ValueError(f"keys/values use A1 or A2, got {op!r}")
    return correct(op, h, keys, dim, loop)


def blend(o: torch.Tensor, o_hat: torch.Tensor, w: float) -> torch.Tensor:
    """`o + w·(ô − o)`; w = 0 returns `o` itself and w = 1 gives `ô` (both bit-for-bit)."""
    return o if w == 0 else torch.lerp(o, o_hat.to(o.dtype), w)


def strength(progress_left: float, w_max: float = 0.8) -> float:
    """w_t = w_max·t/T for the fraction t/T of the schedule still ahead: w_max at the start (progress_left = 1),
    falling linearly. A sampler's step i of N has N − i steps ahead, so its last step gets w_max/N, not 0."""
    return w_max * min(1.0, max(0.0, progress_left))


def windows(frames: int, size: int) -> list[tuple[int, int]]:
    """Windows of `size` with overlap ⌊size/2⌋ (stride size − ⌊size/2⌋), the last one clamped to the end."""
    if frames <= size:
        return [(0, frames)]
    stride = size - size // 2
    starts = list(range(0, frames - size + 1, stride))
    if starts[-1] + size < frames:
        starts.append(frames - size)
    return [(s, s + size) for s in starts]


def triangle(size: int) -> torch.Tensor:
    """Fusion weights [1, 2, …, ⌈size/2⌉, …, 2, 1] (FreeNoise style)."""
    i = torch.arange(size, dtype=torch.float32)
    return torch.minimum(i + 1, size - i)


def windowed(fn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: int, dim: int = 1) -> torch.Tensor:
    """Attention `fn(q, k, v)` over frame windows along `dim`, fused with triangular weights per frame.

    With frames ≤ size it is `fn(q, k, v)` itself.
    """
    frames = q.shape[dim]
    spans = windows(frames, size)
    if len(spans) == 1:
        return fn(q, k, v)
    out = None
    total = torch.zeros(frames, dtype=torch.float32, device=q.device)
    for a, b in spans:
        sl = [slice(None)] * q.ndim
        sl[dim] = slice(a, b)
        sl = tuple(sl)
        o = fn(q[sl], k[sl], v[sl])
        wgt = triangle(b - a).to(q.device)
        shape = [1] * o.ndim
        shape[dim] = b - a
        if out is None:
            out = torch.zeros((*o.shape[:dim], frames, *o.shape[dim + 1:]), dtype=torch.float32, device=o.device)
        out[sl] += o.float() * wgt.view(shape)
        total[a:b] += wgt
    shape = [1] * out.ndim
    shape[dim] = frames
    return (out / total.view(shape)).to(q.dtype)


def fuse_windows(values: torch.Tensor, size: int, dim: int = 0) -> torch.Tensor:
    """The same triangular fusion applied to a signal (each window sees its own slice): for tests and
    diagnostics — a constant signal fuses to itself."""
    return windowed(lambda q, k, v: q, values, values, values, size, dim)


def stage_noise(noise: torch.Tensor, stages: int, factor: int = 2) -> list[torch.Tensor]:
    """Noise of every stage from the finest stage's: stage s takes every factor^(N−s)-th frame (s = 0..N)."""
    n = stages - 1
    return [noise[:: factor ** (n - s)] for s in range(stages)]


def position_scale(frames: int, key_frames: int) -> float:
    """SVD frame positions of a long branch are scaled by t0/t so key frame j keeps its base position."""
    return key_frames / frames if frames > key_frames else 1.0


def adain(x: torch.Tensor, ref: torch.Tensor, dims=(1, 2, 3), eps: float = 1e-6) -> torch.Tensor:
    """Match each frame's per-channel mean/std to `ref`'s (AdaIN colour fix). x, ref: `(F, C, h, w)`."""
    dims = tuple(d for d in dims if d != 1)
    mx, sx = x.mean(dims, keepdim=True), x.std(dims, keepdim=True) + eps
    mr, sr = ref.mean(dims, keepdim=True), ref.std(dims, keepdim=True) + eps
    return (x - mx) / sx * sr + mr
