"""kernels/cascade.py: the operator algebra, corrections, windows and stage noise of ZeroSmooth."""
import pytest
import torch

from zerovideo.kernels import cascade as Z


def matrix(op, K, loop=False):
    """The operator as an explicit K×2K matrix (for checking the matrix-free versions)."""
    eye = torch.eye(2 * K)
    return torch.stack([Z.apply_op(op, eye[:, j], 0, loop) for j in range(2 * K)], dim=1)


@pytest.mark.parametrize("op", Z.OPERATORS)
@pytest.mark.parametrize("loop", [False, True])
def test_op_times_pinv_is_identity_and_pinv_is_the_moore_penrose_inverse(op, loop):
    K = 5
    k = torch.randn(K, 3)
    torch.testing.assert_close(Z.apply_op(op, Z.apply_pinv(op, k, 0, loop), 0, loop), k)
    M = matrix(op, K, loop)
    P = torch.stack([Z.apply_pinv(op, torch.eye(K)[:, j], 0, loop) for j in range(K)], dim=1)
    torch.testing.assert_close(P, torch.linalg.pinv(M), atol=1e-6, rtol=0)


def test_a_correction_puts_key_states_on_even_frames_exactly_and_keeps_odd_frames():
    h, keys = torch.randn(8, 2, 3), torch.randn(4, 2, 3)
    out = Z.correct_q(h, keys)
    assert torch.equal(out[0::2], keys) and torch.equal(out[1::2], h[1::2])


@pytest.mark.parametrize("op", ["A1", "A2"])
def test_pair_corrections_set_pair_means_to_the_keys_and_keep_differences(op):
    h, keys = torch.randn(8, 4), torch.randn(4, 4)
    out = Z.correct_kv(h, keys, op)
    torch.testing.assert_close(Z.apply_op(op, out), keys)
    if op == "A1":
        torch.testing.assert_close(out[0::2] - out[1::2], h[0::2] - h[1::2])
    else:
        torch.testing.assert_close(out[0], keys[0])
        torch.testing.assert_close(out[-1], h[-1])
        torch.testing.assert_close(out[1:-1:2] - out[2::2], h[1:-1:2] - h[2::2])


def test_corrections_work_along_any_axis():
    h, keys = torch.randn(3, 8, 5), torch.randn(3, 4, 5)
    out = Z.correct_kv(h, keys, "A1", dim=1)
    torch.testing.assert_close(out.movedim(1, 0), Z.correct_kv(h.movedim(1, 0), keys.movedim(1, 0), "A1"))


@pytest.mark.parametrize("op", Z.OPERATORS)
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_closed_form_correction_equals_the_operator_formula(op, loop, dim):
    for K in (1, 2, 5):
        shape = [3, 4, 6]
        shape[dim] = 2 * K
        h = torch.randn(shape)
        keys = torch.randn([K if d == dim else n for d, n in enumerate(shape)])
        out = Z.correct(op, h, keys, dim, loop)
        torch.testing.assert_close(out, Z.reference_correct(op, h, keys, dim, loop), atol=1e-6, rtol=0)
        assert out.shape == h.shape and out.stride() == h.stride()
        torch.testing.assert_close(Z.apply_op(op, out, dim, loop), keys, atol=1e-6, rtol=0)


def test_blend_with_zero_strength_is_the_uncorrected_output_itself():
    o, o_hat = torch.randn(4), torch.randn(4)
    assert Z.blend(o, o_hat, 0.0) is o
    assert torch.equal(Z.blend(o, o_hat, 1.0), o_hat)
    torch.testing.assert_close(Z.blend(o, o_hat, 0.8), o + 0.8 * (o_hat - o))
    assert Z.strength(1.0) == 0.8 and Z.strength(0.0) == 0.0 and Z.strength(0.5, 0.6) == pytest.approx(0.3)


def test_coin_is_fair_and_seeded():
    picks = [Z.pick_pair_operator(7, s) for s in range(2000)]
    assert 0.45 < picks.count("A1") / len(picks) < 0.55
    assert picks == [Z.pick_pair_operator(7, s) for s in range(2000)]


def test_windows_overlap_by_half_and_the_last_is_clamped():
    assert Z.windows(25, 25) == [(0, 25)]
    assert Z.windows(50, 25) == [(0, 25), (13, 38), (25, 50)]
    assert Z.windows(10, 4) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert Z.windows(11, 4) == [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]
    assert Z.triangle(4).tolist() == [1, 2, 2, 1] and Z.triangle(5).tolist() == [1, 2, 3, 2, 1]


def test_window_fusion_of_a_constant_is_that_constant():
    x = torch.full((2, 50, 3), 1.7)
    torch.testing.assert_close(Z.fuse_windows(x, 25, dim=1), x)


def test_windowed_attention_with_one_window_equals_full_attention():
    def attn(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2) / 2, dim=-1) @ v
    q, k, v = (torch.randn(6, 25, 4) for _ in range(3))
    # temporal attention is over frames: frames on the sequence axis (dim 1)
    assert torch.equal(Z.windowed(attn, q, k, v, 25, dim=1), attn(q, k, v))
    out = Z.windowed(attn, *(torch.randn(6, 50, 4) for _ in range(3)), 25, dim=1)
    assert out.shape == (6, 50, 4) and torch.isfinite(out).all()


def test_stage_noise_shares_key_frames_across_stages():
    noise = torch.randn(100, 4, 2, 2)
    base, mid, fine = Z.stage_noise(noise, 3)
    assert base.shape[0] == 25 and mid.shape[0] == 50 and torch.equal(fine, noise)
    assert torch.equal(base, mid[::2]) and torch.equal(mid, fine[::2])


def test_position_scale_keeps_key_frames_on_their_base_positions():
    assert Z.position_scale(25, 25) == 1.0
    pos = torch.arange(50) * Z.position_scale(50, 25)
    assert torch.equal(pos[::2], torch.arange(25.0))


def test_adain_matches_channel_statistics():
    x, ref = torch.randn(3, 4, 8, 8) * 3 + 1, torch.randn(3, 4, 8, 8)
    out = Z.adain(x, ref)
    torch.testing.assert_close(out.mean((2, 3)), ref.mean((2, 3)), atol=1e-5, rtol=0)


def test_the_defaults_are_the_first_axis_and_no_loop():
    h, k = torch.randn(8, 3), torch.randn(4, 3)
    for op in ("A", "A1", "A2"):
        assert torch.equal(Z.apply_pinv(op, k), Z.apply_pinv(op, k, 0, False))
        assert torch.equal(Z.correct(op, h, k), Z.correct(op, h, k, 0, False))
        assert torch.equal(Z.reference_correct(op, h, k), Z.reference_correct(op, h, k, 0, False))
    q = torch.randn(2, 6, 3)  # (tokens, frames, channels): windows along dim 1 by default
    assert torch.equal(Z.windowed(lambda a, b, c: a * 2, q, q, q, 4), Z.windowed(lambda a, b, c: a * 2, q, q, q, 4, 1))
    v = torch.randn(6, 2)
    assert torch.equal(Z.fuse_windows(v, 4), Z.fuse_windows(v, 4, 0))


def test_the_coin_only_ever_names_the_pair_operators():
    assert {Z.pick_pair_operator(3, s) for s in range(200)} == {"A1", "A2"}


def test_strength_is_clamped_to_the_schedule():
    assert Z.strength(1.5, 0.8) == 0.8  # a sampler that reports more than the whole schedule ahead
    assert Z.strength(-0.5, 0.8) == 0.0
    assert Z.strength(0.25, 0.8) == pytest.approx(0.2)


def test_adain_keeps_a_nearly_flat_frame_finite_and_damped_by_eps():
    """A frame whose channels barely vary (std s ≈ eps = 1e-6) is stretched by (s_ref + eps)/(s + eps), not
    blown up by 1/s: its output contrast is s/(s + eps) of the reference's."""
    ref = torch.randn(1, 2, 8, 8)
    base = torch.randn(1, 2, 8, 8).double()
    x = (base / base.std((2, 3), keepdim=True) * 1e-6).float() + 0.5  # std exactly 1e-6 per channel
    out = Z.adain(x, ref)
    assert torch.isfinite(out).all()
    s = x.double().std((2, 3))
    want = s / (s + 1e-6) * (ref.double().std((2, 3)) + 1e-6)
    torch.testing.assert_close(out.double().std((2, 3)), want, rtol=2e-2, atol=0)


def test_a_loop_corrects_the_wrap_around_pair_like_every_other_pair():
    """Seamless loops: with `loop`, A2 pairs the last frame with frame 0 (the transition last → first), and that
    pair is corrected as the inner pairs are: its mean becomes key 0 and its difference is kept. Written out by
    hand, pair by pair."""
    h, keys = torch.randn(8, 4), torch.randn(4, 4)
    out = Z.correct_kv(h, keys, "A2", loop=True)
    pairs = [(7, 0), (1, 2), (3, 4), (5, 6)]  # (earlier, later) frame of the pair whose mean is key j
    for j, (a, b) in enumerate(pairs):
        torch.testing.assert_close((out[a] + out[b]) / 2, keys[j])
        torch.testing.assert_close(out[a] - out[b], h[a] - h[b])
    without = Z.correct_kv(h, keys, "A2", loop=False)
    assert torch.equal(without[7], h[7])  # no loop: the last frame has no pair and stays


def test_adain_towards_a_nearly_flat_reference_keeps_eps_in_the_target_contrast():
    """The target contrast is the reference's std + eps: a reference with std 1e-6 gives frames of std ≈ 2e-6."""
    x = torch.randn(1, 2, 8, 8)
    base = torch.randn(1, 2, 8, 8).double()
    ref = (base / base.std((2, 3), keepdim=True) * 1e-6).float()
    out = Z.adain(x, ref).double()
    s = x.double().std((2, 3))
    want = s / (s + 1e-6) * (ref.double().std((2, 3)) + 1e-6)
    torch.testing.assert_close(out.std((2, 3)), want, rtol=2e-2, atol=0)
