"""kernels/noise.py: ZS² dependency noise against its statistics and the paper's search."""
import math

import pytest
import torch
from zv_testing import exactly

from zerovideo.kernels import noise as N


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_closed_form_alpha_values_from_the_spec():
    assert N.alpha_closed_form(0.0) == 1.0
    assert N.alpha_closed_form(0.01) == pytest.approx(0.988, abs=1e-3)
    assert N.alpha_closed_form(0.1) == pytest.approx(0.882, abs=1e-3)
    assert N.alpha_closed_form(0.25) == pytest.approx(0.720, abs=1e-3)
    assert N.alpha_closed_form(5.0) == 0.0  # clamped, never negative / NaN


@pytest.mark.parametrize("mode", N.MODES)
def test_lambda_zero_gives_identical_frames(mode):
    noise, alpha = N.dependency_noise((4, 4, 8, 8), 0.0, g(), mode)
    for i in range(1, 4):
        assert torch.equal(noise[i], noise[0])


@pytest.mark.parametrize("lam", [0.01, 0.1, 0.25, 1.0])
def test_unit_variance_and_neighbour_correlation_sqrt_alpha(lam):
    noise, _ = N.dependency_noise((16, 4, 64, 64), lam, g(1))
    std = noise.flatten(1).std(1)
    assert ((std - 1).abs() < 0.02).all(), std
    want = math.sqrt(N.alpha_closed_form(lam))
    assert abs(N.neighbour_correlation(noise) - want) < 0.01 * want


def test_expected_divergence_matches_lambda():
    noise, _ = N.dependency_noise((16, 4, 64, 64), 0.25, g(2))
    d = N.divergence(noise[:-1], noise[1:]).mean()
    assert float(d) == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("lam", [0.0, 0.001, 0.01, 0.04, 0.5, 1.0, 1.6, 1.65])
def test_search_mode_never_returns_nan_and_hits_lambda(lam):
    """The search measures D on its own draws and bisects α (15 halvings): each step's divergence is λ up to the
    bisection's resolution, also for the small λ where the published listing overshoots α past 1."""
    noise, alpha = N.dependency_noise((4, 4, 32, 32), lam, g(3), "search")
    assert torch.isfinite(noise).all() and ((alpha >= 0) & (alpha <= 1)).all()
    d = N.divergence(noise[:-1], noise[1:])
    assert (d - lam).abs().max() <= 2e-4 + 1e-3 * lam
    if 0 < lam < 1.6:
        assert float(alpha[1:].max()) < 1.0  # a real dependency, not a copy of the previous frame


def test_same_generator_seed_is_bit_identical_and_videos_are_independent_chains():
    a, _ = N.dependency_noise((8, 4, 8, 8), 0.1, g(7), videos=2)
    b, _ = N.dependency_noise((8, 4, 8, 8), 0.1, g(7), videos=2)
    assert torch.equal(a, b)
    iid = torch.randn((8, 4, 8, 8), generator=g(7))
    assert torch.equal(a[4], iid[4])  # each video restarts its chain from its own first innovation


def test_innovations_are_used_as_given():
    iid = torch.randn(3, 4, 8, 8, generator=g(5))
    out, _ = N.dependency_noise(iid.shape, 0.1, None, innovations=iid)
    a = N.alpha_closed_form(0.1)
    torch.testing.assert_close(out[1], math.sqrt(a) * iid[0] + math.sqrt(1 - a) * iid[1])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=exactly("lambda must be ≥ 0, got -0.1")):
        N.dependency_noise((2, 4, 8, 8), -0.1, g())
    with pytest.raises(ValueError, match=exactly("lambda must be ≥ 0, got -0.5")):
        N.alpha_closed_form(-0.5)
    with pytest.raises(ValueError, match=exactly("unknown mode 'magic'; choose one of closed_form, search")):
        N.dependency_noise((2, 4, 8, 8), 0.1, g(), "magic")
    # 3 frames, 4 channels: only the frame axis does not split into 2 videos
    with pytest.raises(ValueError, match=exactly("3 frames do not split into 2 videos")):
        N.dependency_noise((3, 4, 8, 8), 0.1, g(), videos=2)
    with pytest.raises(ValueError, match=exactly("3 frames do not split into 2 videos")):
        N.ar1_chain(torch.zeros(3, 4, 2, 2), 0.5, videos=2)


def test_ar1_chain_is_one_chain_by_default_and_clamps_alpha():
    iid = torch.randn(4, 3, 2, 2, generator=g(8))
    a = 0.7
    want = [iid[0]]
    for i in range(1, 4):
        want.append(math.sqrt(a) * want[-1] + math.sqrt(1 - a) * iid[i])
    torch.testing.assert_close(N.ar1_chain(iid, a), torch.stack(want))
    torch.testing.assert_close(N.ar1_chain(iid, 1.5), iid[:1].expand_as(iid))  # α above 1 is α = 1: copies


def paper_search(prev, lam, gen, draws=10, line_steps=15):
    """The paper's search for one frame, written out draw by draw: 10 draws, a 15-halving bisection of α on
    each, the draw whose D lands closest to λ."""
    n = torch.randn((draws, *prev.shape), generator=gen, dtype=torch.float32)
    best = None
    for d in range(draws):
        lo, hi = 0.0, 1.0

        def div(alpha):
            a = torch.tensor(alpha, dtype=torch.float64).to(prev)
            return float(N.divergence(prev[None], (a.sqrt() * prev + (1 - a).sqrt() * n[d])[None]).double())
        for _ in range(line_steps):
            mid = (lo + hi) / 2
            if div(mid) > lam:
                lo = mid
            else:
                hi = mid
        alpha = (lo + hi) / 2
        err = abs(div(alpha) - lam)
        if best is None or err < best[0]:
            best = (err, alpha, n[d])
    return best[1], best[2]


@pytest.mark.parametrize("lam", [0.01, 0.3])
def test_search_mode_is_the_papers_procedure(lam):
    """The vectorised search against the procedure written out draw by draw, frame by frame, with the same
    generator: the same α per frame, the same chosen draws, so the same noise."""
    shape = (3, 2, 8, 8)
    noise, alpha = N.dependency_noise(shape, lam, g(4), "search")
    gen = g(4)
    frames = [torch.randn(shape[1:], generator=gen)]
    alphas = [1.0]
    for _ in range(1, shape[0]):
        a, n = paper_search(frames[-1], lam, gen)
        alphas.append(a)
        frames.append(math.sqrt(a) * frames[-1] + math.sqrt(1 - a) * n)
    torch.testing.assert_close(alpha, torch.tensor(alphas, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(noise, torch.stack(frames), rtol=1e-5, atol=1e-5)
    assert float(torch.randn(1, generator=gen)) == float(torch.randn(1, generator=_after_search(shape, lam)))


def _after_search(shape, lam):
    gen = g(4)
    N.dependency_noise(shape, lam, gen, "search")
    return gen


def test_search_mode_with_given_innovations_and_progress():
    """Each video starts from its own given first frame (several videos); a search without innovations draws a
    full first frame; progress counts every searched frame of every video."""
    iid = torch.randn(6, 3, 4, 4, generator=g(2))
    calls = []
    noise, alpha = N.dependency_noise(iid.shape, 0.2, g(3), "search", videos=2, innovations=iid,
                                      progress=lambda done, total: calls.append((done, total)))
    assert torch.equal(noise[0], iid[0]) and torch.equal(noise[3], iid[3])
    assert calls == [(k, 4) for k in range(1, 5)]
    assert alpha.shape == (3,) and float(alpha[0]) == 1.0 and 0 < float(alpha[1]) < 1
    drawn, _ = N.dependency_noise((2, 3, 4, 4), 0.2, g(5), "search")
    assert torch.equal(drawn[0], torch.randn(3, 4, 4, generator=g(5)))  # every channel its own draw


def test_closed_form_alpha_per_frame_and_neighbour_correlation_edges():
    _, alpha = N.dependency_noise((4, 2, 4, 4), 0.1, g())
    assert float(alpha[0]) == 1.0 and torch.allclose(alpha[1:], torch.tensor(N.alpha_closed_form(0.1)).double())
    assert math.isnan(N.neighbour_correlation(torch.randn(1, 2, 4, 4)))
    x = torch.randn(4, 2, 8, 8, generator=g(6))
    x[2] = x[1]  # frames a b b c: as one video a pair of equal frames in the middle, as two videos none
    assert N.neighbour_correlation(x) == pytest.approx(1 / 3, abs=0.1)
    assert N.neighbour_correlation(x, videos=2) == pytest.approx(0.0, abs=0.1)
    assert N.neighbour_correlation(torch.stack([x[0], x[0], x[0]])) == pytest.approx(1.0)
