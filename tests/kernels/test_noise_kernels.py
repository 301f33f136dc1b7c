"""kernels/noise.py: ZS² dependency noise against its statistics and the paper's search."""
import math

import pytest
import torch

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
    with pytest.raises(ValueError, match="lambda must be ≥ 0"):
        N.dependency_noise((2, 4, 8, 8), -0.1, g())
    with pytest.raises(ValueError, match="unknown mode"):
        N.dependency_noise((2, 4, 8, 8), 0.1, g(), "magic")
    with pytest.raises(ValueError, match="do not split into 3 videos"):
        N.dependency_noise((4, 4, 8, 8), 0.1, g(), videos=3)
