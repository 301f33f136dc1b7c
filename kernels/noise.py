"""ZS² dependency noise model: correlated initial noise over the frames of a video.

An AR(1) chain over frames, variance preserving (every frame stays N(0, I)):
    ε_0 = n_0,   ε_i = sqrt(α_i)·ε_{i−1} + sqrt(1 − α_i)·n_i,   n_i ~ N(0, I).
Neighbouring frames then correlate with sqrt(α_i). α is chosen so that the authors' divergence
`D(x, p) = mean(e^p·(p − x))` between a frame p and its predecessor x hits a target λ (λ = 0: identical
frames; large λ: independent frames). In expectation D = sqrt(e)·(1 − sqrt(α)), so
α*(λ) = (1 − λ/sqrt(e))², clamped to [0, 1] (closed form, the default). The "search" mode is the paper's
procedure — 10 random draws of n_i, a 15-step line search over α for each, keep the draw that comes
closest to λ — with α clamped to [0, 1] (the published listing pushes α above 1 for λ ≲ 0.04, its own
default included, and produces NaN).
"""
from __future__ import annotations

import math

import torch

MODES = ("closed_form", "search")
SQRT_E = math.sqrt(math.e)


def alpha_closed_form(lam: float) -> float:
    """α*(λ) = (1 − λ/√e)², clamped to [0, 1]."""
    if lam < 0:
        raise ValueError(f"lambda must be ≥ 0, got {lam}")
    return max(0.0, 1.0 - lam / SQRT_E) ** 2  # λ ≥ 0: never above 1


def divergence(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The authors' D(x, p) = mean(e^p·(p − x)) over all but the leading dimension."""
    return (p.exp() * (p - x)).flatten(1).mean(1)


def ar1_chain(innovations: torch.Tensor, alpha: torch.Tensor | float, videos: int = 1) -> torch.Tensor:
    """Turn i.i.d. frames `(videos·F, …)` into per-video AR(1) chains with step correlation sqrt(α).

    `alpha` is a float or a `(F,)` tensor (α_i for the step into frame i; α_0 is ignored).
    """
    if innovations.shape[0] % videos:
        raise ValueError(f"{innovations.shape[0]} frames do not split into {videos} videos")
    n = innovations.view(videos, innovations.shape[0] // videos, *innovations.shape[1:])
    frames = n.shape[1]
    a = torch.as_tensor(alpha, dtype=torch.float64).expand(frames).clamp(0.0, 1.0)
    keep, fresh = a.sqrt().tolist(), (1.0 - a).sqrt().tolist()
    out = torch.empty_like(n)
    out[:, 0] = n[:, 0]
    for i in range(1, frames):
        out[:, i] = keep[i] * out[:, i - 1] + fresh[i] * n[:, i]
    return out.view_as(innovations)


def search_alpha(prev: torch.Tensor, lam: float, generator: torch.Generator, draws: int = 10,
                 line_steps: int = 15) -> tuple[float, torch.Tensor]:
    """The paper's search for one frame: returns (α, n) whose chain step comes closest to D = λ.

    prev: `(…)` the previous frame ε_{i−1}. All draws are searched at once (bisection on α ∈ [0, 1],
    where D falls from ≈ √e at α = 0 to 0 at α = 1).
    """
    n = torch.randn((draws, *prev.shape), generator=generator, dtype=torch.float32).to(prev)
    if lam == 0:
        return 1.0, torch.zeros_like(prev)  # α = 1: the frame is a copy, no innovation enters
    x = prev.unsqueeze(0).expand_as(n)
    lo = torch.zeros(draws, dtype=torch.float64)
    hi = torch.ones(draws, dtype=torch.float64)

    def d_at(a):
        shape = (draws,) + (1,) * prev.ndim
        ak = a.to(prev).view(shape)
        return divergence(x, ak.sqrt() * x + (1 - ak).sqrt() * n).double().cpu()

    for _ in range(line_steps):
        mid = (lo + hi) / 2
        above = d_at(mid) > lam  # D still too large: more correlation needed
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    alpha = (lo + hi) / 2  # inside [0, 1]: the bisection never leaves it
    err = (d_at(alpha) - lam).abs()
    best = int(err.argmin())
    return float(alpha[best]), n[best]


def dependency_noise(shape, lam: float, generator: torch.Generator, mode: str = "closed_form", videos: int = 1,
                     innovations: torch.Tensor | None = None, progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated noise `(videos·F, C, H, W)`; returns (noise, α per frame `(F,)`).

    closed_form: α = α*(λ) for every step, innovations from `innovations` if given (e.g. ComfyUI's own
    seeded noise, so batch_index is respected) else drawn from `generator`.
    search: the paper's per-frame random + line search (innovations are the chosen draws);
    `progress(done, total)` is called after each searched frame (a place to update a bar or stop).
    """
    if lam < 0:
        raise ValueError(f"lambda must be ≥ 0, got {lam}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    shape = tuple(shape)
    if shape[0] % videos:
        raise ValueError(f"{shape[0]} frames do not split into {videos} videos")
    frames = shape[0] // videos
    if mode == "closed_form":
        n = innovations if innovations is not None else torch.randn(shape, generator=generator)
        alpha = torch.full((frames,), alpha_closed_form(lam), dtype=torch.float64)
        alpha[0] = 1.0
        return ar1_chain(n, alpha, videos), alpha
    out = torch.empty(shape)
    alphas = torch.ones(videos, frames, dtype=torch.float64)
    for v in range(videos):
        first = innovations[v * frames] if innovations is not None else torch.randn(shape[1:], generator=generator)
        out[v * frames] = first
        for i in range(1, frames):
            a, n = search_alpha(out[v * frames + i - 1], lam, generator)
            alphas[v, i] = a
            out[v * frames + i] = math.sqrt(a) * out[v * frames + i - 1] + math.sqrt(1 - a) * n
            if progress is not None:
                progress(v * (frames - 1) + i, videos * (frames - 1))
    return out, alphas.mean(0)


def neighbour_correlation(noise: torch.Tensor, videos: int = 1) -> float:
    """Mean Pearson correlation between consecutive frames (within each video)."""
    v = noise.reshape(videos, noise.shape[0] // videos, -1).double()
    a, b = v[:, :-1], v[:, 1:]  # no pairs with one frame per video: the mean below is NaN
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    corr = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    return float(corr.mean())
