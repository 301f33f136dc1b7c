"""Text2Video-Zero motion dynamics in latent space: warping, re-noising and background smoothing.

Motion is given in the paper's units: a translation in pixels of a 512-pixel reference frame, i.e. a
fraction of the frame (12 px = 12/512 of the width, whatever the resolution). Frame k of the video
samples frame 0 at `p + k·δ` (output(p) = input(p + δ)), so positive strengths move the content up and
to the left. The sampling grid reproduces the reference implementation's exactly (coordinates of
a 512-grid, normalised by 512, bilinearly resized to the latent, then `grid_sample(...,
padding_mode="reflection", align_corners=False)` with nearest rounding), computed analytically instead
of from a 512×512 flow field. Zoom and rotation per frame go beyond the paper: they act about the frame
centre, on the same grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

REFERENCE_SIZE = 512
INTERPOLATIONS = ("nearest", "bilinear")


def motion_schedule(frames: int, dx: float, dy: float, zoom: float = 1.0, rotation: float = 0.0) -> torch.Tensor:
    """Per-frame `(dx_k, dy_k, zoom_k, rotation_k)` for constant motion: k·δ, zoom^k, k·rotation.

    Returns `(frames, 4)`; row 0 is the identity (frame 0 is the reference).
    """
    k = torch.arange(frames, dtype=torch.float64)
    return torch.stack([k * dx, k * dy, torch.full_like(k, zoom) ** k, k * rotation], dim=1)


def warp_grid(motion: torch.Tensor, h: int, w: int, ref_size: int = REFERENCE_SIZE) -> torch.Tensor:
    """Sampling grid `(B, h, w, 2)` for per-frame motion rows `(dx, dy, zoom, degrees)` `(B, 4)`.

    Positions are in reference pixels: latent pixel j sits at `(j + 0.5)·ref/w − 0.5` (where bilinear
    resizing of the reference's 512-grid puts it), moves by the motion, and is normalised by `ref`.
    """
    motion = motion.to(torch.float64)
    dev = motion.device
    px = (torch.arange(w, dtype=torch.float64, device=dev) + 0.5) * ref_size / w - 0.5
    py = (torch.arange(h, dtype=torch.float64, device=dev) + 0.5) * ref_size / h - 0.5
    gy, gx = torch.meshgrid(py, px, indexing="ij")
    dx, dy, zoom, deg = (motion[:, i, None, None] for i in range(4))
    c = (ref_size - 1) / 2
    x, y = gx - c, gy - c
    if bool((zoom != 1).any() or (deg != 0).any()):
        th = deg * (math.pi / 180)
        cos, sin = torch.cos(th), torch.sin(th)
        x, y = (cos * x - sin * y) / zoom, (sin * x + cos * y) / zoom
    sx = (x + c + dx) / ref_size * 2 - 1
    sy = (y + c + dy) / ref_size * 2 - 1
    return torch.stack([sx, sy], dim=-1)


def warp_latents(latents: torch.Tensor, motion: torch.Tensor, mode: str = "nearest",
                 ref_size: int = REFERENCE_SIZE) -> torch.Tensor:
    """Warp each latent `(B, C, h, w)` by its motion row `(B, 4)`; rows with no motion are returned exactly.

    `latents` may be a single frame `(1, C, h, w)` broadcast against B motion rows.
    """
    if mode not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {mode!r}; choose one of {', '.join(INTERPOLATIONS)}")
    b = motion.shape[0]
    if latents.shape[0] not in (1, b):
        raise ValueError(f"{latents.shape[0]} latents for {b} motion rows")
    latents = latents.expand(b, *latents.shape[1:])
    identity = (motion[:, 0] == 0) & (motion[:, 1] == 0) & (motion[:, 2] == 1) & (motion[:, 3] == 0)
    out = latents.clone()
    moved = (~identity).nonzero().flatten()
    if len(moved):
        src = latents[moved]
        work = src if src.dtype in (torch.float32, torch.float64) else src.float()
        # the grid straight from float64 to the working dtype: through a half dtype its sampling positions
        # would be rounded to ~1e-3 of the frame
        grid = warp_grid(motion[moved], latents.shape[2], latents.shape[3], ref_size).to(work)
        out[moved] = F.grid_sample(work, grid, mode=mode, padding_mode="reflection",
                                   align_corners=False).to(out.dtype)
    return out


def renoise(x: torch.Tensor, sigma_from: float, sigma_to: float, noise: torch.Tensor,
            flow: bool = False) -> torch.Tensor:
    """Take `x` at noise level σ_from up to σ_to ≥ σ_from: the forward process q(x_σto | x_σfrom).

    Diffusion models in ComfyUI's sigma space (EPS, v, EDM: x_σ = x0 + σ·ε, variance exploding):
    `x + sqrt(σ_to² − σ_from²)·ε` — the exact counterpart of the DDPM forward step (the VP formula must not
    be applied to sigma-space latents). Rectified-flow models (`flow`, SD3/Flux: x_σ = (1−σ)·x0 + σ·ε):
    `a·x + sqrt(σ_to² − a²·σ_from²)·ε` with `a = (1−σ_to)/(1−σ_from)`.
    """
    if sigma_to < sigma_from:
        raise ValueError(f"re-noising goes up in noise: sigma_to {sigma_to} < sigma_from {sigma_from}")
    if not flow:
        return x + math.sqrt(sigma_to ** 2 - sigma_from ** 2) * noise
    a = (1.0 - sigma_to) / (1.0 - sigma_from) if sigma_from < 1.0 else 0.0
    return a * x + math.sqrt(max(sigma_to ** 2 - (a * sigma_from) ** 2, 0.0)) * noise


def dilate(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Binary-ish dilation of `(B, 1, h, w)` masks with a size×size square (kornia morphology)."""
    import kornia.morphology
    kernel = torch.ones(size, size, device=mask.device, dtype=mask.dtype)
    return kornia.morphology.dilation(mask, kernel)


def background_smoothing(warped: torch.Tensor, reference: torch.Tensor, fg_masks: torch.Tensor,
                         fg_first: torch.Tensor, motion: torch.Tensor, alpha: float = 0.4,
                         mode: str = "nearest", dilation: int = 5) -> torch.Tensor:
    """Text2Video-Zero background smoothing at level T.

    warped: `(B, C, h, w)` latents of frames k; reference: `(1, C, h, w)` frame-0 latent at level T;
    fg_masks: `(B, 1, h, w)` foreground masks of frames k; fg_first: `(1, 1, h, w)` of frame 0;
    motion: `(B, 4)` rows of frames k. `M_BG = (1 − M_k)(1 − warp(M_0))` (masks dilated), then
    `x_k ← (1 − M_BG)·x_k + M_BG·(α·x_k + (1 − α)·warp(x_ref))`.
    """
    m_k = dilate(fg_masks, dilation)
    m_0 = warp_latents(dilate(fg_first, dilation), motion, mode)
    bg = (1 - m_k) * (1 - m_0)
    ref = warp_latents(reference, motion, mode)
    return (1 - bg) * warped + bg * (alpha * warped + (1 - alpha) * ref)


def paper_steps(steps: int, t0: int, t1: int, paper_steps: int = 50) -> tuple[int, int]:
    """Step indices (s1, s0) of the paper's t1/t0 for a schedule of `steps` steps.

    t0/t1 count steps from the end of a 50-step schedule (t1 = 47 → step 2, t0 = 44 → step 5); for
    other step counts the same fraction of the schedule is used. Frame 0 is denoised alone over
    [0, s1), continued over [s1, s0), warped, re-noised back to level s1, and all frames run from s1.
    """
    if not 0 <= t0 < t1 < paper_steps:
        raise ValueError(f"need 0 ≤ t0 < t1 < {paper_steps}, got t0={t0}, t1={t1}")
    s1 = round((paper_steps - 1 - t1) * steps / paper_steps)
    s0 = round((paper_steps - 1 - t0) * steps / paper_steps)
    return min(s1, steps), min(max(s0, s1), steps)


def motion_dynamics(x1_t: torch.Tensor, x1_t_prime: torch.Tensor, motion: torch.Tensor, sigma_t: float,
                    sigma_t_prime: float, noise: torch.Tensor, mode: str = "nearest",
                    fg_masks: torch.Tensor | None = None, alpha: float = 0.4, flow: bool = False) -> torch.Tensor:
    """Steps 4-6 of Text2Video-Zero §3.3: the F latents at level T from frame 0's trajectory.

    x1_t: `(1, C, h, w)` frame 0 at σ_T; x1_t_prime: frame 0 at σ_T' ≤ σ_T; motion: `(F, 4)` rows (row 0 is
    frame 0 and is not used); noise: `(F−1, C, h, w)` standard normal. fg_masks: optional `(F, 1, h, w)`
    foreground masks for background smoothing; flow: the model is a rectified-flow model (see `renoise`).
    Returns `(F, C, h, w)` = [x1_T, warped and re-noised copies].
    """
    rows = motion[1:]
    warped = renoise(warp_latents(x1_t_prime, rows, mode), sigma_t_prime, sigma_t, noise, flow)
    if fg_masks is not None:
        warped = background_smoothing(warped, x1_t, fg_masks[1:], fg_masks[:1], rows, alpha, mode)
    return torch.cat([x1_t, warped.to(x1_t.dtype)])
