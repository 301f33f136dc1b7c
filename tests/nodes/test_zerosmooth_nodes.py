"""ZeroSmooth on a tiny real SVD U-Net, through ComfyUI's sampler stack."""
import pytest
import torch
from zv_testing import assert_close_scaled, gen, sample, svd_conds

T0 = 4  # key frames
SIZE = 2  # latent 2×2: keeps the tiny SVD quick


@pytest.fixture(scope="module")
def svd(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_svd(seed=9)


@pytest.fixture(scope="module")
def zs(pack):
    from zerovideo.nodes import zerosmooth
    return zerosmooth


def hsc(zs, model, strength=0.8, schedule="linear", loop=False):
    return zs.HiddenStateCorrection.execute(model=model, strength=strength, schedule=schedule, loop=loop).args[0]


def cascade(zs, model, factor="x2", video=None, color_fix=False, key_frames=T0, seed=1, steps=2):
    import comfy.samplers
    pos, neg = svd_conds(model, SIZE, SIZE)
    guider, latent = zs.SelfCascadeInterpolate.execute(model=model, positive=pos, negative=neg, factor=factor,
                                                       key_frames=key_frames, cfg=2.0, color_fix=color_fix,
                                                       key_frames_video=video).args
    noise = torch.randn(latent["samples"].shape, generator=gen(seed))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", steps)
    out = guider.sample(noise, latent["samples"], comfy.samplers.sampler_object("euler"), sigmas, seed=seed,
                        disable_pbar=True)
    return out, guider, noise


@pytest.mark.parametrize("factor,frames", [("x2", 2 * T0), ("x4", 4 * T0)])
def test_cascade_outputs_the_long_branch_finite(zs, svd, factor, frames):
    out, guider, _ = cascade(zs, hsc(zs, svd), factor)
    assert out.shape == (frames, 4, SIZE, SIZE) and torch.isfinite(out).all()
    assert [s.shape[0] for s in guider.last_stages] == ([T0, 2 * T0] if factor == "x2" else [T0, 2 * T0, 4 * T0])


def test_base_branch_equals_a_plain_svd_run_of_the_key_frames(zs, svd):
    out, guider, noise = cascade(zs, hsc(zs, svd))
    pos, neg = svd_conds(svd, SIZE, SIZE)
    plain = sample(svd, noise[::2], pos, neg, steps=2, cfg=2.0, scheduler="karras", seed=1)
    assert_close_scaled(guider.last_stages[0], plain)


def test_hidden_state_correction_outside_a_cascade_is_the_stock_model(zs, svd):
    pos, neg = svd_conds(svd, SIZE, SIZE)
    noise = torch.randn(6, 4, SIZE, SIZE, generator=gen(3))
    assert torch.equal(sample(hsc(zs, svd), noise, pos, neg, steps=2, cfg=2.0),
                       sample(svd, noise, pos, neg, steps=2, cfg=2.0))


def test_zero_strength_makes_the_long_branch_independent_of_the_key_frames(zs, svd):
    video = {"samples": torch.randn(T0, 4, SIZE, SIZE, generator=gen(4))}
    off = hsc(zs, svd, strength=0.0)
    a, _, _ = cascade(zs, off)
    b, _, _ = cascade(zs, off, video=video)
    assert torch.equal(a, b)
    on = hsc(zs, svd)
    assert not torch.equal(cascade(zs, on)[0], cascade(zs, on, video=video)[0])


def test_correction_pulls_the_long_branch_key_frames_towards_the_base(zs, svd):
    def gap(model):
        out, guider, _ = cascade(zs, model, steps=4)
        return float((out[::2] - guider.last_stages[0]).abs().mean())
    direct, corrected = gap(svd), gap(hsc(zs, svd, strength=1.0, schedule="constant"))
    assert corrected < 0.9 * direct, (corrected, direct)


def test_input_video_mode_makes_the_base_follow_the_clip(zs, svd):
    video = {"samples": torch.randn(T0, 4, SIZE, SIZE, generator=gen(5))}
    out, guider, _ = cascade(zs, hsc(zs, svd), video=video)
    torch.testing.assert_close(guider.last_stages[0], video["samples"], rtol=0, atol=1e-4)
    assert out.shape[0] == 2 * T0 and torch.isfinite(out).all()


def test_color_fix_and_loop_options_run(zs, svd):
    out, _, _ = cascade(zs, hsc(zs, svd, loop=True), color_fix=True)
    assert torch.isfinite(out).all()


def test_bad_inputs_are_clear_errors(zs, svd, comfy):
    import comfy.samplers
    from scripts import tiny_models
    pos, neg = svd_conds(svd, SIZE, SIZE)
    with pytest.raises(ValueError, match="needs a Stable Video Diffusion model"):
        hsc(zs, tiny_models.tiny_sd15())
    with pytest.raises(ValueError, match="needs a Stable Video Diffusion model"):
        zs.SelfCascadeInterpolate.execute(model=tiny_models.tiny_sd15(), positive=pos, negative=neg, factor="x2",
                                          key_frames=T0, cfg=2.0, color_fix=False)
    assert "factor must be one of x2, x4" in zs.SelfCascadeInterpolate.validate_inputs(factor="x3")
    with pytest.raises(ValueError, match="input video has 3 frames"):
        cascade(zs, svd, video={"samples": torch.zeros(3, 4, SIZE, SIZE)})
    with pytest.raises(ValueError, match="input video is 32x32 px but the conditioning image is 16x16"):
        cascade(zs, svd, video={"samples": torch.zeros(T0, 4, 4, 4)})
    guider, latent = zs.SelfCascadeInterpolate.execute(model=svd, positive=pos, negative=neg, factor="x2",
                                                       key_frames=T0, cfg=2.0, color_fix=False).args
    sigmas = comfy.samplers.calculate_sigmas(svd.get_model_object("model_sampling"), "karras", 2)
    with pytest.raises(ValueError, match="makes 8 frames, but the latent has 5 frames"):
        guider.sample(torch.randn(5, 4, SIZE, SIZE), torch.zeros(5, 4, SIZE, SIZE),
                      comfy.samplers.sampler_object("euler"), sigmas, seed=0, disable_pbar=True)


def test_ancestral_samplers_run_deterministically_with_the_shared_noise_sampler_restored(zs, svd):
    import comfy.samplers
    pos, neg = svd_conds(svd, SIZE, SIZE)
    guider, latent = zs.SelfCascadeInterpolate.execute(model=hsc(zs, svd), positive=pos, negative=neg, factor="x2",
                                                       key_frames=T0, cfg=2.0, color_fix=False).args
    noise = torch.randn(latent["samples"].shape, generator=gen(7))
    sigmas = comfy.samplers.calculate_sigmas(svd.get_model_object("model_sampling"), "karras", 2)
    sampler = comfy.samplers.sampler_object("euler_ancestral")
    a = guider.sample(noise, latent["samples"], sampler, sigmas, seed=3, disable_pbar=True)
    b = guider.sample(noise, latent["samples"], sampler, sigmas, seed=3, disable_pbar=True)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert "noise_sampler" not in sampler.extra_options  # restored after the run
