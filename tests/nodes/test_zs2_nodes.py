"""ZS² nodes on real ComfyUI objects: momentum attention identities, dependency noise through the samplers."""
import re

import pytest
import torch
from zv_testing import (assert_close_scaled, cross_frame, gen, momentum, progress_calls, recording_ancestral, sample,
                        sd15_conds)


@pytest.fixture(scope="module")
def sd15(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_sd15(seed=5)


@pytest.fixture(scope="module")
def zs2(pack):
    from zerovideo.nodes import zs2
    return zs2


def test_mu_one_equals_cross_frame_attention_to_frame_zero(pack, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(4, 4, 8, 8, generator=gen(1))
    a = sample(momentum(sd15, 1.0), noise, pos, neg, steps=2)
    b = sample(cross_frame(sd15), noise, pos, neg, steps=2)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_mu_zero_equals_plain_self_attention(pack, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(4, 4, 8, 8, generator=gen(2))
    a = sample(momentum(sd15, 0.0), noise, pos, neg, steps=2)
    torch.testing.assert_close(a, sample(sd15, noise, pos, neg, steps=2), rtol=0, atol=1e-6)


def test_default_mu_changes_the_frames_but_keeps_frame_zero(pack, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(4, 4, 8, 8, generator=gen(3))
    a = sample(momentum(sd15, 0.98), noise, pos, neg, steps=2)
    plain = sample(sd15, noise, pos, neg, steps=2)
    # frame 0 batched vs alone: CPU kernels round differently by batch size, so the bound follows the output
    # scale (values in the hundreds here); the change of frames 1.. is far above it
    assert_close_scaled(a[:1], sample(sd15, noise[:1], pos, neg, steps=2), tol=1e-4)
    assert (a[1:] - plain[1:]).abs().max() > 1e-2 * max(1.0, float(plain.abs().max()))


def test_momentum_stacks_after_cross_frame_attention_and_with_attn2_patches(pack, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(3, 4, 8, 8, generator=gen(4))
    calls = []

    def ipadapter_like(n, context, value, extra):
        calls.append(n.shape[0])
        return n, context, value
    stacked = momentum(cross_frame(sd15), 0.5)
    stacked.set_model_attn2_patch(ipadapter_like)
    # the EMA of identical frame-0 keys is frame 0 again: the stack equals cross-frame attention alone
    torch.testing.assert_close(sample(stacked, noise, pos, neg, steps=2),
                               sample(cross_frame(sd15), noise, pos, neg, steps=2), rtol=0, atol=1e-6)
    assert calls and all(c == 6 for c in calls)


def test_model_without_attention_blocks_is_refused(pack):
    from scripts import tiny_models
    bare = tiny_models.tiny_sd15(transformer_depth=[0, 0], transformer_depth_output=[0, 0, 0, 0],
                                 transformer_depth_middle=-1)
    with pytest.raises(ValueError, match="no U-Net self-attention blocks"):
        momentum(bare, 0.98)


def noise_node(zs2, seed=3, lam=0.1, mode="closed_form", videos=1, latent=None):
    return zs2.DependencyNoise.execute(seed=seed, noise_lambda=lam, mode=mode, videos=videos, latent=latent)


def test_noise_node_is_deterministic_and_batch_index_changes_the_video(zs2):
    source = noise_node(zs2).args[0]
    latent = {"samples": torch.zeros(4, 4, 16, 16)}
    a, b = source.generate_noise(latent), source.generate_noise(latent)
    assert torch.equal(a, b)
    moved = source.generate_noise(dict(latent, batch_index=[4, 5, 6, 7]))
    assert not torch.equal(a, moved)
    assert torch.equal(noise_node(zs2, seed=3, lam=0.0).args[0].generate_noise(latent)[3], a[0])


def test_noise_node_reports_the_measured_neighbour_correlation(zs2):
    out = noise_node(zs2, lam=0.1, latent={"samples": torch.zeros(16, 4, 64, 64)})
    want = (1 - 0.1 / 1.6487212707) ** 1.0  # sqrt(alpha) = 1 − λ/√e
    assert abs(out.args[1] - want) < 0.01 * want
    assert "neighbour correlation" in out.ui["text"][0]
    assert abs(noise_node(zs2, lam=0.1).args[1] - want) < 1e-9


def test_one_frame_and_non_video_latents_are_clear_errors(zs2):
    """Word for word: each message names the node, the latent's shape or frame count, and the fix."""
    source = noise_node(zs2).args[0]
    with pytest.raises(ValueError, match=r"^Dependency Noise: needs at least 2 frames per video; the latent has 1 "
                                         r"frame\(s\) for 1 video\(s\)\. Set the latent batch size to the frame "
                                         r"count\.$"):
        source.generate_noise({"samples": torch.zeros(1, 4, 8, 8)})
    with pytest.raises(ValueError, match=r"^Dependency Noise: needs at least 2 frames per video; the latent has 3 "
                                         r"frame\(s\) for 3 video\(s\)\."):
        noise_node(zs2, videos=3).args[0].generate_noise({"samples": torch.zeros(3, 4, 8, 8)})
    for shape in ((1, 4, 2, 8, 8), (8, 4, 2, 8, 8), (8, 4, 8)):  # a video model's latent; not a latent batch
        with pytest.raises(ValueError, match=rf"^Dependency Noise: the latent is {re.escape(str(list(shape)))}; it "
                                             r"needs a batch of image latents, one per frame \(\[frames, C, h, w\], "
                                             r"or \[frames, C, 1, h, w\]\): a video model's latent, with its frames "
                                             r"along its own time axis, is not one$"):
            source.generate_noise({"samples": torch.zeros(shape)})
    with pytest.raises(ValueError, match=r"^Dependency Noise: the latent has 4 frames, which do not split into "
                                         r"videos=3 \(each video is one run of frames\)$"):
        noise_node(zs2, videos=3).args[0].generate_noise({"samples": torch.zeros(4, 6, 8, 8)})  # 6 channels


def test_two_frames_per_video_are_enough(zs2):
    for frames, videos in ((2, 1), (4, 2)):
        noise = noise_node(zs2, videos=videos).args[0].generate_noise({"samples": torch.zeros(frames, 4, 8, 8)})
        assert noise.shape == (frames, 4, 8, 8)


def test_a_latent_with_a_time_axis_of_one_is_a_batch_of_frames(zs2):
    """Qwen-Image's latents are [frames, C, 1, h, w]: the same noise as the [frames, C, h, w] batch, with the axis
    kept."""
    source = noise_node(zs2, lam=0.05).args[0]
    flat = source.generate_noise({"samples": torch.zeros(6, 4, 8, 8)})
    timed = source.generate_noise({"samples": torch.zeros(6, 4, 1, 8, 8)})
    assert timed.shape == (6, 4, 1, 8, 8)
    assert torch.equal(timed[:, :, 0], flat)


def test_model_patch_gives_a_stock_ksampler_the_same_noise_as_the_noise_node(zs2, sd15):
    import comfy.sample
    import comfy.samplers
    pos, neg = sd15_conds(sd15)
    latent = torch.zeros(4, 4, 8, 8)
    patched = zs2.DependencyNoiseModel.execute(model=sd15, noise_lambda=0.1, mode="closed_form", videos=1,
                                               per_step_noise=False).args[0]
    ksampler = sample(patched, comfy.sample.prepare_noise(latent, 9), pos, neg, steps=3, seed=9)
    source = noise_node(zs2, seed=9, lam=0.1).args[0]
    sigmas = comfy.samplers.calculate_sigmas(sd15.get_model_object("model_sampling"), "normal", 3)
    custom = comfy.sample.sample_custom(sd15, source.generate_noise({"samples": latent}), 5.0,
                                        comfy.samplers.sampler_object("euler"), sigmas, pos, neg, latent,
                                        seed=9, disable_pbar=True)
    assert torch.equal(ksampler, custom)
    assert not torch.equal(ksampler, sample(sd15, comfy.sample.prepare_noise(latent, 9), pos, neg, steps=3, seed=9))


def test_per_step_noise_option_changes_ancestral_sampling_deterministically(zs2, sd15):
    import comfy.sample
    pos, neg = sd15_conds(sd15)
    noise = comfy.sample.prepare_noise(torch.zeros(3, 4, 8, 8), 2)

    def run(per_step):
        m = zs2.DependencyNoiseModel.execute(model=sd15, noise_lambda=0.05, mode="closed_form", videos=1,
                                             per_step_noise=per_step).args[0]
        return sample(m, noise, pos, neg, steps=3, sampler="euler_ancestral", seed=2)
    on, off = run(True), run(False)
    assert torch.equal(on, run(True)) and not torch.equal(on, off)


@pytest.mark.parametrize("per_step", [True, False])
def test_per_step_noise_has_the_dependency_statistics(zs2, sd15, per_step):
    """The noise an ancestral sampler adds at every step: with per_step_noise each draw is an AR(1) chain over the
    frames of each video (unit variance, neighbour correlation √α(λ), independent across the video boundary);
    without it the sampler's own i.i.d. noise."""
    import comfy.sample
    import comfy.samplers
    from zerovideo.kernels import noise as dnm
    draws = []
    lam, videos, frames = 0.25, 2, 6
    m = zs2.DependencyNoiseModel.execute(model=sd15, noise_lambda=lam, mode="closed_form", videos=videos,
                                         per_step_noise=per_step).args[0]
    pos, neg = sd15_conds(sd15)
    latent = torch.zeros(videos * frames, 4, 32, 32)
    sigmas = comfy.samplers.calculate_sigmas(sd15.get_model_object("model_sampling"), "karras", 4)
    comfy.sample.sample_custom(m, comfy.sample.prepare_noise(latent, 3), 5.0, recording_ancestral(draws),
                               sigmas, pos, neg, latent, seed=3, disable_pbar=True)
    assert len(draws) == 3  # no noise after the last step
    rho = dnm.alpha_closed_form(lam) ** 0.5 if per_step else 0.0
    for n in draws:
        v = n.reshape(videos, frames, -1).double()
        assert float(v.std(-1).sub(1).abs().max()) < 0.06  # every frame stays unit Gaussian
        within = dnm.neighbour_correlation(n, videos)
        assert abs(within - rho) < 0.03, (within, rho)
        across = float(torch.corrcoef(torch.stack([v[0, -1], v[1, 0]]))[0, 1])
        assert abs(across) < 0.05  # the second video's chain starts afresh
    assert not any(torch.equal(draws[i], draws[j]) for i in range(len(draws)) for j in range(i))


def test_input_model_options_are_untouched(zs2, sd15):
    before = repr(sd15.model_options)
    momentum(sd15, 0.5)
    zs2.DependencyNoiseModel.execute(model=sd15, noise_lambda=0.1, mode="closed_form", videos=1, per_step_noise=True)
    assert repr(sd15.model_options) == before


@pytest.mark.parametrize("node", ["DependencyNoise", "DependencyNoiseModel"])
def test_noise_lambda_reaches_independent_frames(zs2, node):
    """The tooltip promises independent frames at λ ≥ √e: the input's maximum must get there."""
    import math
    from zerovideo.kernels import noise as dnm
    cls = getattr(zs2, node)
    lam = next(i for i in cls.GET_SCHEMA().inputs if i.id == "noise_lambda")
    assert lam.max >= math.sqrt(math.e) and dnm.alpha_closed_form(lam.max) == 0.0


def test_dependency_noise_model_samples_a_qwen_image_latent(zs2):
    """The model-patch form on a tiny Qwen-Image (latents [frames, 16, 1, h, w]), with per-step noise through an
    ancestral sampler: it samples (a video model's latent is refused; before, this one was too) and changes the
    frames."""
    from scripts import tiny_models
    m = tiny_models.tiny_image_dit("qwen_image", seed=2)
    patched = zs2.DependencyNoiseModel.execute(model=m, noise_lambda=0.05, mode="closed_form", videos=1,
                                               per_step_noise=True).args[0]
    pos, neg = ([[torch.randn(1, 7, 32, generator=gen(s)), {}]] for s in (1, 2))
    latent = torch.zeros(4, 16, 1, 8, 8)
    noise = torch.randn(latent.shape, generator=gen(4))
    out = sample(patched, noise, pos, neg, steps=2, cfg=2.0, sampler="euler_ancestral", scheduler="simple")
    plain = sample(m, noise, pos, neg, steps=2, cfg=2.0, sampler="euler_ancestral", scheduler="simple")
    assert out.shape == latent.shape and torch.isfinite(out).all()
    assert float((out - plain).abs().max()) > 1e-3 * float(plain.abs().max())


def test_search_mode_is_seeded_and_reports_its_progress_per_frame(zs2):
    """Search mode draws candidates with the node's seed (the same noise twice, another seed another noise) and
    moves ComfyUI's progress bar once per searched frame (the server's hook also stops it on an interrupt)."""
    with progress_calls() as calls:
        latent = {"samples": torch.zeros(6, 4, 8, 8)}
        a = noise_node(zs2, seed=3, lam=0.05, mode="search", videos=2).args[0].generate_noise(latent)
        assert calls == [(v * 2 + i, 4) for v in range(2) for i in range(1, 3)]  # 2 videos × 2 searched frames
        b = noise_node(zs2, seed=3, lam=0.05, mode="search", videos=2).args[0].generate_noise(latent)
        c = noise_node(zs2, seed=4, lam=0.05, mode="search", videos=2).args[0].generate_noise(latent)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the candidates come from the node's own seeded generator, not from torch's global state (which ComfyUI's
    # prepare_noise happens to seed just before: whatever else draws from it in between must not matter)
    iid = torch.randn(6, 4, 8, 8, generator=gen(9))
    torch.manual_seed(0)
    d = zs2.correlated(iid, 0.05, "search", 2, seed=3)
    torch.manual_seed(1)
    assert torch.equal(zs2.correlated(iid, 0.05, "search", 2, seed=3), d)
