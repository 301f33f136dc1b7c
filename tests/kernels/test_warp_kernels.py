"""kernels/warp.py: the paper's warp semantics on hand-checked cases, re-noising, background smoothing."""

import math

import pytest
import torch
import torch.nn.functional as F

from zerovideo.kernels import warp as W


def dot(h=8, w=8, y=4, x=4, c=1):
    t = torch.zeros(1, c, h, w)
    t[0, :, y, x] = 1.0
    return t


def where(t):
    return [tuple(int(v) for v in p) for p in (t[0, 0] == 1).nonzero()]


def test_zero_motion_is_an_exact_identity():
    x = torch.randn(3, 4, 8, 8)
    assert torch.equal(W.warp_latents(x, torch.tensor([[0.0, 0.0, 1.0, 0.0]] * 3)), x)
    assert torch.equal(W.warp_latents(x, torch.tensor([[0.0, 0.0, 1.0, 0.0]] * 3), "bilinear"), x)


def test_positive_strength_moves_content_up_and_left_by_a_fraction_of_the_frame():
    # 64 reference px = 1/8 of the frame = 1 latent px at 8x8, 2 latent px at 16x16
    assert where(W.warp_latents(dot(), torch.tensor([[64.0, 0, 1, 0]]))) == [(4, 3)]
    assert where(W.warp_latents(dot(), torch.tensor([[0, 64.0, 1, 0]]))) == [(3, 4)]
    assert where(W.warp_latents(dot(16, 16, 8, 8), torch.tensor([[64.0, 64.0, 1, 0]]))) == [(6, 6)]
    assert where(W.warp_latents(dot(), torch.tensor([[-64.0, 0, 1, 0]]))) == [(4, 5)]


def test_nearest_rounding_follows_the_reference_grid_for_the_paper_default_strength():
    # 512 px frame, 64x64 latent, strength 12: frame k samples j + 1.5k - 1/16, rounded to nearest.
    motion = W.motion_schedule(4, 12.0, 0.0)
    x = torch.arange(64.0).repeat(64, 1)[None, None]  # value = column index
    out = W.warp_latents(x, motion)
    assert [int(out[k, 0, 10, 10]) - 10 for k in range(4)] == [0, 1, 3, 4]


def test_reflection_at_the_border():
    x = torch.arange(8.0).repeat(8, 1)[None, None]
    out = W.warp_latents(x, torch.tensor([[64.0, 0, 1, 0]]))[0, 0, 0]
    assert out.tolist() == [1, 2, 3, 4, 5, 6, 7, 7]
    out = W.warp_latents(x, torch.tensor([[-128.0, 0, 1, 0]]))[0, 0, 0]
    assert out.tolist() == [1, 0, 0, 1, 2, 3, 4, 5]


def reference_flow_warp(latent, dx, dy):
    """The reference's construction, written out: a 512² coordinate field plus flow, normalised by 512,
    resized to the latent bilinearly, then nearest grid_sample with reflection."""
    ys, xs = torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij")
    coords = torch.stack([xs + dx, ys + dy])[None] / 512 * 2 - 1
    coords = F.interpolate(coords, size=latent.shape[-2:], mode="bilinear").permute(0, 2, 3, 1)
    return F.grid_sample(latent, coords, mode="nearest", padding_mode="reflection", align_corners=False)


@pytest.mark.parametrize("size", [(64, 64), (64, 96), (40, 24)])
def test_analytic_grid_equals_the_reference_flow_field(size):
    latent = torch.randn(1, 4, *size, generator=torch.Generator().manual_seed(0))
    for k in range(1, 8):
        ours = W.warp_latents(latent, torch.tensor([[12.0 * k, 7.0 * k, 1.0, 0.0]]))
        assert torch.equal(ours, reference_flow_warp(latent, 12.0 * k, 7.0 * k)), k


def test_zoom_and_rotation_act_about_the_centre():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 6] = 1  # right of the centre
    zoomed = W.warp_latents(x, torch.tensor([[0, 0, 2.0, 0]]))
    assert zoomed[0, 0, 4, 8] == 1 and zoomed[0, 0, 4, 6] == 0  # 2x zoom doubles the distance
    turned = W.warp_latents(x, torch.tensor([[0, 0, 1.0, 90.0]]))
    assert turned[0, 0, 2, 4] == 1  # +90°: right of centre goes to above centre (counter-clockwise)


def test_renoise_adds_exactly_the_missing_variance():
    x = torch.zeros(1, 4, 64, 64)
    eps = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    out = W.renoise(x, 3.0, 5.0, eps)
    torch.testing.assert_close(out, 4.0 * eps)
    with pytest.raises(ValueError, match="goes up in noise"):
        W.renoise(x, 5.0, 3.0, eps)


def test_flow_renoise_is_the_rectified_flow_forward_process():
    """x_σ = (1−σ)·x0 + σ·ε: re-noising x_0.3 to 0.6 must give mean (1−0.6)·x0 and std 0.6 over the noise."""
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(1, 4, 8, 8, generator=g)
    x_from = 0.7 * x0 + 0.3 * torch.randn(20000, 4, 8, 8, generator=g)
    out = W.renoise(x_from, 0.3, 0.6, torch.randn(20000, 4, 8, 8, generator=g), flow=True)
    torch.testing.assert_close(out.mean(0, keepdim=True), 0.4 * x0, atol=0.02, rtol=0)
    assert abs(float(out.std(0).mean()) - 0.6) < 0.005
    eps = torch.randn(1, 4, 8, 8, generator=g)
    assert torch.equal(W.renoise(x0, 0.5, 0.5, eps, flow=True), x0)  # no step: unchanged
    assert torch.equal(W.renoise(x0, 0.5, 1.0, eps, flow=True), eps)  # to σ = 1: pure noise


def test_paper_steps_map_t0_t1_to_step_indices():
    assert W.paper_steps(50, 44, 47) == (2, 5)
    assert W.paper_steps(100, 44, 47) == (4, 10)
    assert W.paper_steps(20, 44, 47) == (1, 2)
    with pytest.raises(ValueError, match="t0 < t1"):
        W.paper_steps(50, 47, 44)
    with pytest.raises(ValueError, match="t0 < t1"):  # equal: no step between the warp and its target level
        W.paper_steps(50, 45, 45)


def test_background_smoothing_blends_only_the_background():
    frames, c, h, w = 3, 4, 16, 16
    motion = W.motion_schedule(frames, 0.0, 0.0)  # no motion: warp is the identity
    x1_t = torch.randn(1, c, h, w)
    warped = torch.randn(frames - 1, c, h, w)
    fg = torch.zeros(frames, 1, h, w)
    fg[:, :, 6:10, 6:10] = 1
    out = W.background_smoothing(warped, x1_t, fg[1:], fg[:1], motion[1:], alpha=0.4)
    # inside the dilated foreground (2 px wider each side): untouched
    assert torch.equal(out[:, :, 4:12, 4:12], warped[:, :, 4:12, 4:12])
    # far background: 0.4·x_k + 0.6·x_ref
    torch.testing.assert_close(out[:, :, 0, 0], 0.4 * warped[:, :, 0, 0] + 0.6 * x1_t[:, :, 0, 0])


def test_motion_dynamics_keeps_frame_zero_and_warps_the_rest():
    x1_t = torch.randn(1, 4, 8, 8)
    x1_tp = torch.randn(1, 4, 8, 8)
    noise = torch.zeros(2, 4, 8, 8)
    motion = W.motion_schedule(3, 64.0, 0.0)
    out = W.motion_dynamics(x1_t, x1_tp, motion, sigma_t=2.0, sigma_t_prime=1.0, noise=noise)
    assert torch.equal(out[0], x1_t[0])
    assert torch.equal(out[1, :, :, :7], x1_tp[0, :, :, 1:])
    assert torch.equal(out[2, :, :, :6], x1_tp[0, :, :, 2:])


@pytest.mark.parametrize("dx,dy,zoom,deg", [(5.0, -7.0, 1.3, 17.0), (0.0, 0.0, 0.8, -30.0), (12.0, 12.0, 1.0, 0.0)])
def test_grid_equals_torch_affine_grid_with_the_reference_half_pixel_offset(dx, dy, zoom, deg):
    """Independent construction: zoom and rotation about the frame centre are the affine map
    [[cos, −sin], [sin, cos]] / zoom of torch's own affine_grid (align_corners=False); the translation is
    2δ/512 of the normalised frame, and the reference implementation's 512-grid of pixel centres normalised by
    512 adds −1/512 on both axes. H ≠ W, so swapped axes show."""
    h, w = 8, 12
    th = math.radians(deg)
    theta = torch.tensor([[[math.cos(th) / zoom, -math.sin(th) / zoom, 0.0],
                           [math.sin(th) / zoom, math.cos(th) / zoom, 0.0]]], dtype=torch.float64)
    base = F.affine_grid(theta, (1, 1, h, w), align_corners=False)
    want = base + torch.tensor([(2 * dx - 1) / 512, (2 * dy - 1) / 512], dtype=torch.float64)
    got = W.warp_grid(torch.tensor([[dx, dy, zoom, deg]], dtype=torch.float64), h, w)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)



def test_a_one_degree_rotation_alone_is_applied():
    got = W.warp_grid(torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64), 8, 12)
    assert not torch.equal(got, W.warp_grid(torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64), 8, 12))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_latents_are_warped_in_float32(dtype):
    """Sub-pixel (bilinear) warping of fp16/bf16 latents happens in float32 and is cast back once."""
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    motion = torch.tensor([[0.0, 0.0, 1.0, 0.0], [5.3, -2.7, 1.05, 3.0]])
    want = W.warp_latents(x, motion, "bilinear").to(dtype)
    got = W.warp_latents(x.to(dtype), motion, "bilinear")
    assert got.dtype == dtype
    torch.testing.assert_close(got, W.warp_latents(x.to(dtype).float(), motion, "bilinear").to(dtype), rtol=0, atol=0)
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)


def test_flow_renoise_from_the_pure_noise_level_is_the_noise_itself():
    """σ_from = 1 is pure noise for a rectified-flow model: nothing of x survives (a = 0), no division by 0."""
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(W.renoise(x, 1.0, 1.0, eps, flow=True), eps, rtol=0, atol=0)


def reference_smoothing(warped, x_ref, masks_k, mask_0, rows, alpha=0.4, size=5):
    """Background smoothing as the paper and the spec state it, written independently: masks dilated with a
    5×5 square (max-pooling), M_BG = (1 − M_k)(1 − warp(M_0)), x_k ← (1 − M_BG)·x_k + M_BG·(α·x_k + (1 − α)·
    warp(x_ref)), α = 0.4. Only the warp itself is the kernel's (tested above against affine_grid)."""
    def dilated(m):
        return F.max_pool2d(m, size, stride=1, padding=size // 2)
    m_bg = (1 - dilated(masks_k)) * (1 - W.warp_latents(dilated(mask_0), rows))
    return (1 - m_bg) * warped + m_bg * (alpha * warped + (1 - alpha) * W.warp_latents(x_ref, rows))


def frame_masks(frames, h, w):
    """Binary foreground boxes at a different place in every frame."""
    m = torch.zeros(frames, 1, h, w)
    for k in range(frames):
        m[k, :, 3 + k:7 + k, 2 + 2 * k:5 + 2 * k] = 1
    return m


def test_background_smoothing_with_its_defaults_equals_the_papers_formula():
    frames, h, w = 4, 16, 16
    rows = W.motion_schedule(frames, 64.0, -32.0)[1:]
    warped, x_ref = torch.randn(frames - 1, 4, h, w), torch.randn(1, 4, h, w)
    masks = frame_masks(frames, h, w)
    out = W.background_smoothing(warped, x_ref, masks[1:], masks[:1], rows)
    torch.testing.assert_close(out, reference_smoothing(warped, x_ref, masks[1:], masks[:1], rows), rtol=0,
                               atol=1e-6)
    assert not torch.equal(out, warped) and not torch.equal(out, reference_smoothing(
        warped, x_ref, masks[1:], masks[:1], rows, size=3))  # the dilation size matters here


def test_motion_dynamics_smooths_each_frame_with_its_own_mask_and_frame_zeros():
    frames, h, w = 4, 16, 16
    motion = W.motion_schedule(frames, 64.0, 32.0)
    x1_t, x1_tp = torch.randn(1, 4, h, w), torch.randn(1, 4, h, w)
    noise = torch.randn(frames - 1, 4, h, w)
    masks = frame_masks(frames, h, w)
    out = W.motion_dynamics(x1_t, x1_tp, motion, sigma_t=2.0, sigma_t_prime=1.0, noise=noise, fg_masks=masks)
    plain = W.motion_dynamics(x1_t, x1_tp, motion, sigma_t=2.0, sigma_t_prime=1.0, noise=noise)
    want = reference_smoothing(plain[1:], x1_t, masks[1:], masks[:1], motion[1:])
    assert torch.equal(out[0], x1_t[0])
    torch.testing.assert_close(out[1:], want, rtol=0, atol=1e-6)
