"""Text2Video-Zero motion dynamics: the one-node sampler and the graph-form warp, on a tiny SD1.5 U-Net."""
import math

import pytest
import torch
from zv_testing import assert_close_scaled, cross_frame, flux_conds, gen, recording_ancestral, sd15_conds


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


@pytest.mark.parametrize("base", ["ddim", "euler", "heun", "dpm_2"])
def test_frame_zero_equals_the_plain_single_image_with_the_same_seed(t2vz, sd15, base):
    """What the README promises for deterministic samplers without history between steps."""
    import comfy.sample
    import comfy.samplers
    pos, neg = sd15_conds(sd15)
    latent = torch.zeros(4, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 123)
    assert torch.equal(noise[:1], comfy.sample.prepare_noise(latent[:1], 123))
    video = sample_custom(cross_frame(sd15), t2vz_sampler(t2vz, base), noise, pos, neg)
    single = sample_custom(sd15, comfy.samplers.sampler_object(base), noise[:1], pos, neg)  # same sigmas
    assert video.shape == (4, 4, 8, 8) and torch.isfinite(video).all()
    assert_close_scaled(video[:1], single)
    assert (video[1:] - video[:1]).abs().max() > 1e-2


@pytest.mark.parametrize("base,least", [("dpmpp_2m", 1e-3), ("uni_pc", 1e-3), ("lms", 1e-3)])
def test_multistep_samplers_restart_their_history_so_frame_zero_differs(t2vz, sd15, base, least):
    """The limit the README states: a multistep sampler's history does not cross the passes (to s1, to s0, from
    s1), so frame 0 is not the single image. If this ever fails, the README can promise more."""
    import comfy.sample
    import comfy.samplers
    pos, neg = sd15_conds(sd15)
    noise = comfy.sample.prepare_noise(torch.zeros(3, 4, 8, 8), 5)
    video = sample_custom(cross_frame(sd15), t2vz_sampler(t2vz, base), noise, pos, neg)
    single = sample_custom(sd15, comfy.samplers.sampler_object(base), noise[:1], pos, neg)
    relative = float((video[:1] - single).abs().max().detach() / single.abs().max().detach())
    assert least < relative < 1.0, relative


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


@pytest.mark.parametrize("shape,match", [
    ((3, 64, 64), r"^foreground_mask has 3 frames; give 1 \(for all frames\) or 4$"),
    ((1, 32, 32), r"^foreground_mask is 32x32 px but the video is 64x64 px$"),
    # one side off by more than a latent pixel (8 px), the other right: width x height in the message
    ((1, 40, 64), r"^foreground_mask is 64x40 px but the video is 64x64 px$"),
    ((1, 64, 40), r"^foreground_mask is 40x64 px but the video is 64x64 px$"),
    ((1, 73, 64), r"^foreground_mask is 64x73 px but the video is 64x64 px$"),
    ((1, 64, 73), r"^foreground_mask is 73x64 px but the video is 64x64 px$"),
    ((1, 64, 64), r"^foreground_mask is empty \(all black\): nothing is foreground$")])
def test_bad_foreground_masks_are_named_in_the_error(t2vz, shape, match):
    mask = torch.zeros(shape) if "is empty" in match else torch.ones(shape)
    with pytest.raises(ValueError, match=match):
        t2vz.latent_masks(mask, 4, 8, 8)


@pytest.mark.parametrize("shape", [(1, 72, 56), (1, 56, 72), (4, 71, 57)])
def test_a_mask_within_a_latent_pixel_of_the_video_size_is_taken(t2vz, shape):
    """Masks up to 8 px (one latent pixel) off in either side are scaled to the latent, e.g. from a video whose
    size is not a multiple of 8."""
    out = t2vz.latent_masks(torch.ones(shape), 4, 8, 8)
    assert out.shape == (4, 1, 8, 8) and torch.equal(out, torch.ones_like(out))


def test_background_smoothing_blends_the_background_towards_frame_zero(t2vz, sd15):
    """Paper §3.3: at level s1 the background of every frame k ≥ 1 becomes α·x_k + (1 − α)·warp(x_0), α = 0.4,
    the background being outside the 5×5-dilated foreground masks; the foreground is untouched. With zero motion
    warp is the identity, so the frames entering step s1 must equal that blend of the unmasked run's frames."""
    import comfy.sample
    import comfy.samplers
    import torch.nn.functional as F
    from zerovideo.kernels import warp
    pos, neg = sd15_conds(sd15)
    mask = torch.zeros(1, 128, 128)
    mask[:, 48:80, 56:96] = 1  # latent rows 6:10, columns 7:12 of 16×16
    noise = torch.randn(3, 4, 16, 16, generator=gen(3))
    steps, seed = 8, 4
    s1, _ = warp.paper_steps(steps, 30, 40)
    sigmas = comfy.samplers.calculate_sigmas(sd15.get_model_object("model_sampling"), "karras", steps)

    def entering(**kw):
        seen = {}

        def callback(i, x0, x, total):
            if x.shape[0] == 3:
                seen.setdefault(i, x.clone())
        sampler = t2vz_sampler(t2vz, "euler", motion_x=0.0, motion_y=0.0, **kw)
        comfy.sample.sample_custom(cross_frame(sd15), noise, 5.0, sampler, sigmas, pos, neg, torch.zeros_like(noise),
                                   callback=callback, seed=seed, disable_pbar=True)
        return seen[s1]
    plain, masked = entering(), entering(foreground_mask=mask)
    fg = torch.zeros(1, 1, 16, 16)
    fg[..., 6:10, 7:12] = 1
    bg = 1 - F.max_pool2d(fg, 5, stride=1, padding=2)  # outside the dilated foreground
    assert 0 < float(bg.mean()) < 1
    want = plain + bg * 0.6 * (plain[:1] - plain)
    assert torch.equal(masked[0], plain[0])
    assert_close_scaled(masked[1:], want[1:])
    assert float((masked[1:] - plain[1:]).abs().max()) > 1e-2


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
    """SD3-style models (x_σ = (1−σ)x0 + σε): KSamplerAdvanced hands over x_σ/(1−σ) (inverse_noise_scaling) and
    resumes from (1−σ)·latent. With zero motion frames 1.. must be, in those units, a·x_σ' + b·ε at level σ."""
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
    state_from = (1 - s_from) * base.process_latent_in(x1_tp["samples"])  # what the sampler integrated
    want = base.process_latent_out((a * state_from + b * eps) / (1 - s_to))  # what the next pass resumes from
    assert 0 < a < 1
    torch.testing.assert_close(out[1:], want, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[0], x1_t["samples"][0])


def ksampler_advanced(model, latent, noise, pos, neg, steps, start, end, sampler, scheduler, cfg=4.0):
    """What a KSamplerAdvanced node does (add_noise off ⇔ zero noise; leftover noise kept when end < steps)."""
    import comfy.sample
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, pos, neg, latent, start_step=start,
                               last_step=end, force_full_denoise=False, disable_pbar=True)


def sd3_conds():
    return ([[torch.randn(1, 77, 64, generator=gen(s)), {"pooled_output": torch.randn(1, 64, generator=gen(s + 5))}]]
            for s in (1, 2))


@pytest.mark.parametrize("family", ["sd15", "sd3 (rectified flow)"])
def test_graph_form_equals_the_one_node_sampler(t2vz, sd15, family):
    """The workflow t2vz_graph_form (KSamplerAdvanced → Motion Latent Warp → KSamplerAdvanced) and the
    Text2Video-Zero Sampler are the same procedure: with zero motion and the same re-noise noise every frame
    agrees. On flow models this fails if the warp node re-noises the handed-over latent in the wrong units."""
    from scripts import tiny_models
    from zerovideo.kernels import warp
    if family == "sd15":
        model, channels, scheduler = sd15, 4, "ddim_uniform"
        pos, neg = sd15_conds(sd15)
    else:
        model, channels, scheduler = tiny_models.tiny_sd3(), 16, "simple"
        pos, neg = sd3_conds()
    frames, steps, seed, t0, t1 = 3, 10, 11, 30, 40
    model = cross_frame(model)
    noise = torch.randn(frames, channels, 8, 8, generator=gen(6))
    one_node = sample_custom(model, t2vz_sampler(t2vz, "euler", motion_x=0.0, motion_y=0.0, t0=t0, t1=t1), noise,
                             pos, neg, steps=steps, cfg=4.0, scheduler=scheduler, seed=seed)
    s1, s0 = warp.paper_steps(steps, t0, t1)
    empty = torch.zeros(1, channels, 8, 8)
    first = ksampler_advanced(model, empty, noise[:1], pos, neg, steps, 0, s1, "euler", scheduler)
    later = ksampler_advanced(model, first, torch.zeros_like(first), pos, neg, steps, s1, s0, "euler", scheduler)
    video = t2vz.MotionLatentWarp.execute(model=model, latent={"samples": later}, first_frame={"samples": first},
                                          frames=frames, motion_x=0.0, motion_y=0.0, zoom=1.0, rotation=0.0, t0=t0,
                                          t1=t1, interpolation="nearest", steps=steps, scheduler=scheduler,
                                          seed=seed + 0x72F).args[0]["samples"]
    graph = ksampler_advanced(model, video, torch.zeros_like(video), pos, neg, steps, s1, steps, "euler", scheduler)
    assert torch.isfinite(graph).all() and float((graph[1:] - graph[:1]).abs().max()) > 1e-3
    assert_close_scaled(graph, one_node)


def test_the_sampler_renoises_a_rectified_flow_model_with_the_flow_forward_process(t2vz, comfy):
    """On a flow model the one-node sampler must re-noise frame 0's copies with b = sqrt(σ² − a²σ'²), not the
    sigma-space b = sqrt(σ² − σ'²): with zero motion, the frames entering step s1 minus b·(their noise) agree."""
    import comfy.sample
    import comfy.samplers
    from scripts import tiny_models
    from zerovideo.kernels import warp
    sd3 = tiny_models.tiny_sd3()
    pos, neg = sd3_conds()
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


@pytest.mark.parametrize("family", ["sd15", "flux"])
def test_per_frame_controlnet_hints_reach_the_joint_pass(t2vz, sd15, family):
    """ComfyUI prepares a ControlNet's hint for the batch of the first call and keeps it: after the frame-0-only
    passes every frame of the joint pass would be controlled by frame 0's hint. Each frame must get its own, with
    a U-Net's ControlNet and with a DiT's (an XLabs-style Flux ControlNet on the cross-frame Flux)."""
    from scripts import tiny_models
    frames = 3
    if family == "flux":
        model, cn = tiny_models.tiny_flux(seed=2), tiny_models.tiny_flux_controlnet(seed=7)
        (pos, neg), channels = flux_conds(), 16
    else:
        model, cn = sd15, tiny_models.tiny_controlnet(seed=7)
        (pos, neg), channels = sd15_conds(sd15), 4
    noise = torch.randn(frames, channels, 8, 8, generator=gen(12))
    levels = torch.arange(frames, dtype=torch.float32) / frames
    per_frame = levels.view(frames, 1, 1, 1).expand(frames, 3, 64, 64).contiguous()
    seen = []  # the mean of each hint row the control model receives (recorded on the module: host-independent)

    def record(module, args, kwargs):
        seen.append(kwargs["hint"].flatten(1).mean(1).tolist())
    hook = cn.control_model.register_forward_pre_hook(record, with_kwargs=True)

    def controlled(conds, hint):
        applied = cn.copy().set_cond_hint(hint, 1.0, (0.0, 1.0))  # what Apply ControlNet does
        return [[c[0], dict(c[1], control=applied)] for c in conds]

    def video(hint):
        return sample_custom(cross_frame(model), t2vz_sampler(t2vz, motion_x=0.0, motion_y=0.0), noise,
                             controlled(pos, hint), controlled(neg, hint), steps=6,
                             scheduler="simple" if family == "flux" else "ddim_uniform")
    try:
        own = video(per_frame)
    finally:
        hook.remove()
    joint = [h for h in seen if len(h) >= frames]  # frame 0 alone: one row per cond kind (at most two)
    assert joint and all(h == pytest.approx(levels.tolist() * (len(h) // frames)) for h in joint)
    assert all(h == pytest.approx([0.0] * len(h)) for h in seen if len(h) < frames)  # frame 0's own hint
    first_only = video(per_frame[:1].expand(frames, -1, -1, -1))
    assert_close_scaled(own[:1], first_only[:1])
    assert not torch.equal(own[1:], first_only[1:])  # (the tiny ControlNets' residuals are small, but they arrive)


def test_an_ancestral_base_sampler_never_draws_the_same_noise_twice_for_frame_zero(t2vz, sd15):
    """Each pass of the procedure would restart the sampler's default generator from the seed: frame 0 would get
    the same per-step noise at step 0, at step s1 and in the joint pass. One stream serves the whole run."""
    draws = []
    base = recording_ancestral(draws)
    sampler = t2vz.Text2VideoZeroSampler.execute(sampler=base, motion_x=12.0, motion_y=0.0, zoom=1.0, rotation=0.0,
                                                 t0=30, t1=40, interpolation="nearest").args[0]
    pos, neg = sd15_conds(sd15)
    out = sample_custom(cross_frame(sd15), sampler, torch.randn(3, 4, 8, 8, generator=gen(8)), pos, neg, steps=8,
                        scheduler="karras", seed=3)
    assert torch.isfinite(out).all() and len(draws) >= 8
    frame0 = [d[0] for d in draws]
    for i in range(len(frame0)):
        for j in range(i):
            assert not torch.allclose(frame0[i], frame0[j]), f"steps {j} and {i} drew the same noise for frame 0"


def test_the_fps_input_is_passed_to_the_fps_output_with_the_papers_default(t2vz, sd15):
    import comfy.samplers
    base = comfy.samplers.sampler_object("ddim")
    motion = dict(motion_x=12.0, motion_y=12.0, zoom=1.0, rotation=0.0, t0=30, t1=40, interpolation="nearest")
    assert t2vz.Text2VideoZeroSampler.execute(sampler=base, **motion).args[1] == 4.0  # prompts saved without it
    assert t2vz.Text2VideoZeroSampler.execute(sampler=base, fps=12.5, **motion).args[1] == 12.5
    one = {"samples": torch.zeros(1, 4, 8, 8)}
    warp_args = dict(model=sd15, latent=one, first_frame=one, frames=2, steps=50, scheduler="ddim_uniform", seed=1,
                     **motion)
    assert t2vz.MotionLatentWarp.execute(**warp_args).args[1] == 4.0
    assert t2vz.MotionLatentWarp.execute(fps=24.0, **warp_args).args[1] == 24.0


def test_a_single_mask_without_a_batch_axis_covers_every_frame(t2vz):
    """A MASK of shape (H, W) (no batch axis, as some mask nodes give it) is one mask for all frames."""
    mask = torch.zeros(64, 64)
    mask[:32] = 1.0
    out = t2vz.latent_masks(mask, 3, 8, 8)
    expected = torch.zeros(3, 1, 8, 8)
    expected[:, :, :4] = 1.0
    assert torch.equal(out, expected)


def test_latents_with_a_length_one_time_axis_are_image_batches_and_video_latents_are_refused(t2vz):
    """Qwen-Image's latent format has a time axis of length 1 ([frames, C, 1, h, w]): its frames are the batch.
    A video model's latent (frames along its own time axis) is refused by name."""
    x = torch.randn(3, 16, 1, 8, 8, generator=gen(1))
    flat, restore = t2vz.image_frames(x, "Text2Video-Zero Sampler")
    assert flat.shape == (3, 16, 8, 8) and torch.equal(restore(flat), x)
    same, restore = t2vz.image_frames(x[:, :, 0], "Text2Video-Zero Sampler")
    assert same is not None and torch.equal(restore(same), x[:, :, 0])
    with pytest.raises(ValueError, match=r"^Motion Latent Warp: latent is \[1, 16, 4, 8, 8\]; it needs a batch of "
                                         r"image latents"):
        t2vz.image_frames(torch.zeros(1, 16, 4, 8, 8), "Motion Latent Warp", "latent")
