"""Text2Video-Zero motion dynamics: the one-node sampler and the graph-form warp, on a tiny SD1.5 U-Net."""
import math

import pytest
import torch
from zv_testing import assert_close_scaled, cross_frame, gen, sample, sd15_conds


@pytest.fixture(scope="module")
def sd15(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_sd15(seed=4)


@pytest.fixture(scope="module")
def t2vz(pack):
    from zerovideo.nodes import text2video_zero
    return text2video_zero


def t2vz_sampler(t2vz, base="ddim", **kw):
    import comfy.samplers
    args = dict(motion_x=12.0, motion_y=12.0, zoom=1.0, rotation=0.0, t0=30, t1=40, interpolation="nearest")
    args.update(kw)
    return t2vz.Text2VideoZeroSampler.execute(sampler=comfy.samplers.sampler_object(base), **args).args[0]


def sample_custom(model, sampler, noise, pos, neg, steps=20, cfg=5.0, scheduler="ddim_uniform", seed=0):
    import comfy.sample
    import comfy.samplers
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps)
    return comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, pos, neg, torch.zeros_like(noise),
                                      seed=seed, disable_pbar=True)


def test_frame_zero_equals_the_plain_single_image_with_the_same_seed(t2vz, sd15):
    import comfy.sample
    pos, neg = sd15_conds(sd15)
    latent = torch.zeros(4, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 123)
    assert torch.equal(noise[:1], comfy.sample.prepare_noise(latent[:1], 123))
    video = sample_custom(cross_frame(sd15), t2vz_sampler(t2vz), noise, pos, neg)
    single = sample(sd15, noise[:1], pos, neg, steps=20, sampler="ddim", scheduler="ddim_uniform")
    assert video.shape == (4, 4, 8, 8) and torch.isfinite(video).all()
    assert_close_scaled(video[:1], single)
    assert (video[1:] - video[:1]).abs().max() > 1e-2


def test_any_base_sampler_works_and_the_run_is_deterministic(t2vz, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(3, 4, 8, 8, generator=gen(2))
    model = cross_frame(sd15)
    for base in ("euler_ancestral", "dpmpp_2m", "heun"):
        a = sample_custom(model, t2vz_sampler(t2vz, base), noise, pos, neg, steps=6, scheduler="karras", seed=5)
        b = sample_custom(model, t2vz_sampler(t2vz, base), noise, pos, neg, steps=6, scheduler="karras", seed=5)
        assert torch.isfinite(a).all() and torch.equal(a, b), base


def test_one_frame_is_a_clear_error(t2vz, sd15):
    pos, neg = sd15_conds(sd15)
    with pytest.raises(ValueError, match="the latent has 1 frame"):
        sample_custom(sd15, t2vz_sampler(t2vz), torch.randn(1, 4, 8, 8), pos, neg, steps=4)


def test_t0_not_below_t1_is_refused_before_running(t2vz):
    check = t2vz.Text2VideoZeroSampler.validate_inputs
    assert "must be smaller than t1" in check(t0=47, t1=44, interpolation="nearest")
    assert "between 0 and 48" in check(t0=60, t1=61, interpolation="nearest")
    assert "interpolation must be one of nearest, bilinear" in check(t0=4, t1=6, interpolation="cubic")
    assert check(t0=44, t1=47, interpolation="bilinear") is True


@pytest.mark.parametrize("shape,match", [((3, 64, 64), "has 3 frames"), ((1, 32, 32), "is 32x32 px"),
                                         ((1, 64, 64), "is empty")])
def test_bad_foreground_masks_are_named_in_the_error(t2vz, shape, match):
    mask = torch.zeros(shape) if match == "is empty" else torch.ones(shape)
    with pytest.raises(ValueError, match=match):
        t2vz.latent_masks(mask, 4, 8, 8)


def test_background_smoothing_with_a_mask_runs_through_the_sampler(t2vz, sd15):
    pos, neg = sd15_conds(sd15)
    mask = torch.zeros(1, 128, 128)
    mask[:, 48:80, 48:80] = 1  # latent 6:10, dilated 4:12 of 16: the border is background
    noise = torch.randn(3, 4, 16, 16, generator=gen(3))
    out = sample_custom(cross_frame(sd15), t2vz_sampler(t2vz, foreground_mask=mask), noise, pos, neg, steps=6)
    plain = sample_custom(cross_frame(sd15), t2vz_sampler(t2vz), noise, pos, neg, steps=6)
    assert torch.isfinite(out).all() and not torch.equal(out, plain)


def test_graph_form_returns_frame_zero_and_renoised_warped_copies(t2vz, sd15):
    import comfy.samplers
    x1_t = {"samples": torch.randn(1, 4, 8, 8, generator=gen(4))}
    x1_tp = {"samples": torch.randn(1, 4, 8, 8, generator=gen(5))}
    out = t2vz.MotionLatentWarp.execute(model=sd15, latent=x1_tp, first_frame=x1_t, frames=64, motion_x=0.0,
                                        motion_y=0.0, zoom=1.0, rotation=0.0, t0=44, t1=47, interpolation="nearest",
                                        steps=50, scheduler="ddim_uniform", seed=1).args[0]["samples"]
    assert out.shape == (64, 4, 8, 8)
    assert torch.equal(out[0], x1_t["samples"][0])
    sigmas = comfy.samplers.calculate_sigmas(sd15.get_model_object("model_sampling"), "ddim_uniform", 50)
    want = math.sqrt(float(sigmas[2]) ** 2 - float(sigmas[5]) ** 2) / 0.18215  # stored-latent units
    got = float((out[1:] - x1_tp["samples"]).std())
    assert abs(got / want - 1) < 0.05


def test_graph_form_renoises_a_rectified_flow_model_with_the_flow_forward_process(t2vz, comfy):
    """SD3-style models (x_σ = (1−σ)x0 + σε): zero motion, so frames 1.. are exactly a·x_T' + b·ε."""
    import comfy.samplers
    from scripts import tiny_models
    sd3 = tiny_models.tiny_sd3()
    x1_t = {"samples": torch.randn(1, 16, 8, 8, generator=gen(4))}
    x1_tp = {"samples": torch.randn(1, 16, 8, 8, generator=gen(5))}
    out = t2vz.MotionLatentWarp.execute(model=sd3, latent=x1_tp, first_frame=x1_t, frames=3, motion_x=0.0,
                                        motion_y=0.0, zoom=1.0, rotation=0.0, t0=44, t1=47, interpolation="nearest",
                                        steps=50, scheduler="simple", seed=1).args[0]["samples"]
    sigmas = comfy.samplers.calculate_sigmas(sd3.get_model_object("model_sampling"), "simple", 50)
    s_to, s_from = float(sigmas[2]), float(sigmas[5])
    a = (1 - s_to) / (1 - s_from)
    b = math.sqrt(s_to ** 2 - (a * s_from) ** 2)
    base = sd3.model
    eps = torch.randn((2, 16, 8, 8), generator=torch.Generator().manual_seed(1))
    want = base.process_latent_out(a * base.process_latent_in(x1_tp["samples"]) + b * eps)
    assert 0 < a < 1
    torch.testing.assert_close(out[1:], want, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[0], x1_t["samples"][0])


def test_the_sampler_renoises_a_rectified_flow_model_with_the_flow_forward_process(t2vz, comfy):
    """On a flow model the one-node sampler must re-noise frame 0's copies with b = sqrt(σ² − a²σ'²), not the
    sigma-space b = sqrt(σ² − σ'²): with zero motion, the frames entering step s1 minus b·(their noise) agree."""
    import comfy.sample
    import comfy.samplers
    from scripts import tiny_models
    from zerovideo.kernels import warp
    sd3 = tiny_models.tiny_sd3()
    pos, neg = ([[torch.randn(1, 77, 64, generator=gen(s)), {"pooled_output": torch.randn(1, 64, generator=gen(s + 5))}]]
                for s in (1, 2))
    noise = torch.randn(3, 16, 8, 8, generator=gen(3))
    steps, seed = 20, 7
    sigmas = comfy.samplers.calculate_sigmas(sd3.get_model_object("model_sampling"), "simple", steps)
    s1, s0 = warp.paper_steps(steps, 30, 40)
    entering = {}

    def callback(i, x0, x, total):
        if x.shape[0] == 3:
            entering.setdefault(i, x.clone())
    comfy.sample.sample_custom(sd3, noise, 3.0, t2vz_sampler(t2vz, "euler", motion_x=0.0, motion_y=0.0), sigmas,
                               pos, neg, torch.zeros_like(noise), callback=callback, seed=seed, disable_pbar=True)
    x = entering[s1]
    eps = torch.randn((2, 16, 8, 8), generator=torch.Generator().manual_seed(seed + 0x72F))
    s_to, s_from = float(sigmas[s1]), float(sigmas[s0])
    a = (1 - s_to) / (1 - s_from)

    def spread(b):
        return float(((x[1] - b * eps[0]) - (x[2] - b * eps[1])).abs().max())
    assert spread(math.sqrt(s_to ** 2 - (a * s_from) ** 2)) < 1e-5
    assert spread(math.sqrt(s_to ** 2 - s_from ** 2)) > 1e-2


def test_graph_form_refuses_a_video_latent_as_frame_zero(t2vz, sd15):
    video = {"samples": torch.zeros(4, 4, 8, 8)}
    with pytest.raises(ValueError, match="must be a single frame latent"):
        t2vz.MotionLatentWarp.execute(model=sd15, latent=video, first_frame=video, frames=4, motion_x=1.0,
                                      motion_y=0.0, zoom=1.0, rotation=0.0, t0=44, t1=47, interpolation="nearest",
                                      steps=50, scheduler="ddim_uniform", seed=1)
