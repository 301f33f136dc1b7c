"""The image-U-Net techniques on an SDXL layout (tiny, random weights): no attention on the first level, two
transformer blocks per stack, linear projections, size/crop conditioning. The same identities as on SD1.5."""
import pytest
import torch
from zv_testing import assert_close_scaled, cross_frame, gen, momentum, sample, sdxl_conds, with_reference


@pytest.fixture(scope="module")
def sdxl(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_sdxl(seed=4)


@pytest.fixture(scope="module")
def t2vz(pack):
    from zerovideo.nodes import text2video_zero
    return text2video_zero


def test_the_tiny_model_is_an_sdxl_with_stacked_transformer_blocks(sdxl):
    from comfy.ldm.modules.attention import SpatialTransformer
    assert type(sdxl.model).__name__ == "SDXL"
    depths = [len(m.transformer_blocks) for m in sdxl.model.diffusion_model.modules()
              if isinstance(m, SpatialTransformer)]
    assert depths and all(d == 2 for d in depths)


def test_cross_frame_attention_matches_the_explicit_per_frame_reference(pack, sdxl):
    pos, neg = sdxl_conds(sdxl)
    noise = torch.randn(3, 4, 8, 8, generator=gen(5))
    a, b = sample(cross_frame(sdxl), noise, pos, neg, steps=2), sample(with_reference(sdxl), noise, pos, neg, steps=2)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))
    assert (a - sample(sdxl, noise, pos, neg, steps=2)).abs().max() > 1e-2


def test_cross_frame_attention_switched_off_is_bit_identical(pack, sdxl):
    pos, neg = sdxl_conds(sdxl)
    noise = torch.randn(3, 4, 8, 8, generator=gen(6))
    assert torch.equal(sample(cross_frame(sdxl, start=1.0, end=1.0), noise, pos, neg), sample(sdxl, noise, pos, neg))


def test_momentum_identities(pack, sdxl):
    pos, neg = sdxl_conds(sdxl)
    noise = torch.randn(3, 4, 8, 8, generator=gen(7))
    torch.testing.assert_close(sample(momentum(sdxl, 1.0), noise, pos, neg, steps=2),
                               sample(cross_frame(sdxl), noise, pos, neg, steps=2), rtol=0, atol=1e-6)
    torch.testing.assert_close(sample(momentum(sdxl, 0.0), noise, pos, neg, steps=2),
                               sample(sdxl, noise, pos, neg, steps=2), rtol=0, atol=1e-6)


def test_text2video_zero_sampler_keeps_frame_zero_the_single_image(t2vz, sdxl):
    import comfy.sample
    import comfy.samplers
    pos, neg = sdxl_conds(sdxl)
    noise = comfy.sample.prepare_noise(torch.zeros(3, 4, 8, 8), 11)
    sampler = t2vz.Text2VideoZeroSampler.execute(
        sampler=comfy.samplers.sampler_object("ddim"), motion_x=12.0, motion_y=12.0, zoom=1.0, rotation=0.0,
        t0=44, t1=47, interpolation="nearest").args[0]
    sigmas = comfy.samplers.calculate_sigmas(sdxl.get_model_object("model_sampling"), "ddim_uniform", 20)
    video = comfy.sample.sample_custom(cross_frame(sdxl), noise, 5.0, sampler, sigmas, pos, neg,
                                       torch.zeros(3, 4, 8, 8), seed=11, disable_pbar=True)
    single = sample(sdxl, noise[:1], pos, neg, steps=20, sampler="ddim", scheduler="ddim_uniform")
    assert video.shape == (3, 4, 8, 8) and torch.isfinite(video).all()
    assert_close_scaled(video[:1], single)
    assert (video[1:] - video[:1]).abs().max() > 1e-2
