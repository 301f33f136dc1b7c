"""kernels/attention.py against the definitions (pure torch, no ComfyUI)."""
import pytest
import torch

from zerovideo.kernels import attention as A


def states(chunks=2, frames=5, tokens=3, channels=4, seed=0):
    return torch.randn(chunks * frames, tokens, channels, generator=torch.Generator().manual_seed(seed))


def test_split_and_merge_are_exact_inverses_and_keep_chunks_apart():
    x = states()
    xf = A.split_frames(x, 2)
    assert xf.shape == (2, 5, 3, 4)
    assert torch.equal(xf[1, 0], x[5])  # chunk 1 starts after the 5 frames of chunk 0
    assert torch.equal(A.merge_frames(xf), x)
    with pytest.raises(ValueError, match="does not split into 3 equal chunks"):
        A.split_frames(x, 3)


@pytest.mark.parametrize("mode,expect", [
    ("first", [[0], [0], [0], [0], [0]]),
    ("previous", [[0], [0], [1], [2], [3]]),
    ("first+previous", [[0, 0], [0, 0], [0, 1], [0, 2], [0, 3]]),
    ("first+self", [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]]),
])
def test_cross_frame_kv_reads_the_anchor_frames_of_the_same_chunk(mode, expect):
    x = states()
    kv = A.cross_frame_kv(x, 2, mode)
    assert kv.shape == (10, 3 * len(expect[0]), 4)
    for c in range(2):
        for f, anchors in enumerate(expect):
            want = torch.cat([x[c * 5 + a] for a in anchors], dim=0)
            assert torch.equal(kv[c * 5 + f], want), (mode, c, f)


def test_cross_frame_kv_uses_a_given_global_first_frame():
    x = states()
    first = torch.randn(2, 3, 4)
    kv = A.cross_frame_kv(x, 2, "first+self", first=first)
    assert torch.equal(kv[7, :3], first[1]) and torch.equal(kv[7, 3:], x[7])


def test_unknown_anchor_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown anchor mode 'last'"):
        A.cross_frame_kv(states(), 2, "last")


def test_momentum_mu_one_is_frame_zero_and_mu_zero_is_identity():
    x = states(frames=7)
    assert torch.equal(A.momentum_kv(x, 2, 1.0), A.cross_frame_kv(x, 2, "first"))
    assert torch.equal(A.momentum_kv(x, 2, 0.0), x)


def test_momentum_matches_the_ema_recursion_and_the_closed_form_sum():
    x = states(chunks=3, frames=6)
    mu = 0.7
    out = A.split_frames(A.momentum_kv(x, 3, mu), 3)
    xf = A.split_frames(x, 3)
    for a in range(6):  # m_a = mu^a x_0 + (1-mu) sum_{j=1..a} mu^(a-j) x_j
        want = mu ** a * xf[:, 0] + sum((1 - mu) * mu ** (a - j) * xf[:, j] for j in range(1, a + 1))
        torch.testing.assert_close(out[:, a], want, rtol=1e-6, atol=1e-6)


def test_momentum_anchor_mix_pulls_towards_frame_zero():
    x = states(frames=4)
    full = A.momentum_kv(x, 2, 0.5, anchor_mix=1.0)
    assert torch.equal(full, A.cross_frame_kv(x, 2, "first"))
    with pytest.raises(ValueError, match="mu must be in"):
        A.momentum_kv(x, 2, 1.5)


def reference_momentum(frames: list, mu: float, beta: float) -> list:
    """ZS² momentum over one chunk's frames, written from the definition: m_0 = x_0, m_a = μ·m_{a−1} +
    (1 − μ)·x_a, then each blended back towards frame 0 by β."""
    out, m = [], None
    for a, x in enumerate(frames):
        m = x if a == 0 else mu * m + (1 - mu) * x
        out.append((1 - beta) * m + beta * frames[0])
    return out


@pytest.mark.parametrize("mu,beta", [(0.0, 0.5), (0.0, 1.0), (0.0, 0.0), (0.7, 0.25)])
def test_momentum_with_anchor_mix_equals_the_definition_even_at_mu_zero(mu, beta):
    x = states(chunks=2, frames=4)
    got = A.split_frames(A.momentum_kv(x, 2, mu, beta), 2)
    for c in range(2):
        want = reference_momentum(list(A.split_frames(x, 2)[c]), mu, beta)
        torch.testing.assert_close(got[c], torch.stack(want), rtol=0, atol=1e-6)


def test_one_chunk_is_a_valid_batch():
    """CFG 1 (or a split cond/uncond call) gives the attention one chunk of frames."""
    x = states(chunks=1, frames=4)
    assert A.split_frames(x, 1).shape == (1, 4, 3, 4)
    assert torch.equal(A.cross_frame_kv(x, 1, "first"), x[:1].expand(4, -1, -1))
    torch.testing.assert_close(A.momentum_kv(x, 1, 0.5), torch.stack(reference_momentum(list(x), 0.5, 0.0)))
    with pytest.raises(ValueError, match="does not split into 0 equal chunks"):
        A.split_frames(x, 0)


def test_the_default_anchor_mode_is_the_papers_first_frame():
    x = states()
    assert torch.equal(A.cross_frame_kv(x, 2), A.cross_frame_kv(x, 2, "first"))


@pytest.mark.parametrize("mode", A.ANCHOR_MODES)
def test_heads_as_extra_axes_give_the_flattened_result(mode):
    """DiT attentions hand keys/values over as (B, N, heads, head dim) or a tokens-second view of (B, heads, N,
    head dim): the kernels read only the frame and token axes, so the result is that of the flattened (B, N, C)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2 * 4, 2, 5, 3, generator=g).transpose(1, 2)  # (chunks·F, N=5, heads=2, D=3), not contiguous
    first = torch.randn(2, 5, 2, 3, generator=g)
    flat = x.reshape(8, 5, 6)
    for given in (None, first):
        out = A.cross_frame_kv(x, 2, mode, first=given)
        ref = A.cross_frame_kv(flat, 2, mode, first=None if given is None else given.reshape(2, 5, 6))
        assert torch.equal(out.reshape(8, -1, 6), ref)
    assert torch.equal(A.momentum_kv(x, 2, 0.7, 0.2).reshape(8, 5, 6), A.momentum_kv(flat, 2, 0.7, 0.2))
