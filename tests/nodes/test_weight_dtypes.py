"""Every MODEL node on U-Nets loaded with the weight dtypes users load them with.

ComfyUI stores fp16/bf16/fp8 (e4m3fn) weights and computes either in that dtype (fp16/bf16 on a GPU) or in a
manual-cast dtype (fp8 weights everywhere; any half dtype on a CPU). Both forms are built here the way
ComfyUI's loader builds them (tiny_models.with_weight_dtype), and every node must sample finite frames that the
patch changed, or refuse by name.
"""
import pytest
import torch
from zv_testing import gen, sample, sd15_conds, svd_conds

# (weight dtype, compute dtype or None for ComfyUI's own choice on this device)
DTYPES = {
    "fp16 weights": (torch.float16, None),
    "bf16 weights": (torch.bfloat16, None),
    "fp8_e4m3fn weights": (torch.float8_e4m3fn, None),
    "fp16 compute": (torch.float16, torch.float16),
    "bf16 compute": (torch.bfloat16, torch.bfloat16),
}


@pytest.fixture(autouse=True)
def as_the_executor_runs_nodes():
    """ComfyUI's executor runs every node and sampler under torch.inference_mode (execution.py); weight patches on
    fp8 weights (stochastic rounding with out=) rely on it."""
    with torch.inference_mode():
        yield


@pytest.fixture(scope="module", params=list(DTYPES))
def dtype_case(request):
    return request.param


@pytest.fixture(scope="module")
def sd15(comfy, dtype_case):
    from scripts import tiny_models
    weight, compute = DTYPES[dtype_case]
    mp = tiny_models.with_weight_dtype(tiny_models.tiny_sd15(seed=3), weight, compute)
    assert mp.model.get_dtype() == weight
    return mp


@pytest.fixture(scope="module")
def svd(comfy, dtype_case):
    from scripts import tiny_models
    weight, compute = DTYPES[dtype_case]
    return tiny_models.with_weight_dtype(tiny_models.tiny_svd(seed=9), weight, compute)


def changed(out, plain):
    assert out.shape == plain.shape and torch.isfinite(out).all()
    assert float((out - plain).abs().max()) > 1e-3 * max(1.0, float(plain.abs().max()))


def test_image_model_nodes(pack, sd15):
    import comfy.samplers
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch, Text2VideoZeroSampler
    from zerovideo.nodes.zs2 import DependencyNoiseModel, TemporalMomentumAttention
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(3, 4, 8, 8, generator=gen(1))
    plain = sample(sd15, noise, pos, neg, steps=2)
    assert torch.isfinite(plain).all()
    cfa = CrossFrameAttentionPatch.execute(model=sd15, anchor="first+previous", start_percent=0.0,
                                           end_percent=1.0).args[0]
    changed(sample(cfa, noise, pos, neg, steps=2), plain)
    tma = TemporalMomentumAttention.execute(model=sd15, mu=0.9, anchor_mix=0.2, start_percent=0.0,
                                            end_percent=1.0).args[0]
    changed(sample(tma, noise, pos, neg, steps=2), plain)
    dnm = DependencyNoiseModel.execute(model=sd15, noise_lambda=0.1, mode="closed_form", videos=1,
                                       per_step_noise=True).args[0]
    changed(sample(dnm, noise, pos, neg, steps=2, sampler="euler_ancestral"),
            sample(sd15, noise, pos, neg, steps=2, sampler="euler_ancestral"))
    sampler = Text2VideoZeroSampler.execute(sampler=comfy.samplers.sampler_object("euler"), motion_x=12.0,
                                            motion_y=0.0, zoom=1.0, rotation=0.0, t0=30, t1=40,
                                            interpolation="bilinear").args[0]
    sigmas = comfy.samplers.calculate_sigmas(sd15.get_model_object("model_sampling"), "karras", 4)
    import comfy.sample
    video = comfy.sample.sample_custom(cfa, noise, 5.0, sampler, sigmas, pos, neg, torch.zeros_like(noise), seed=1,
                                       disable_pbar=True)
    changed(video, comfy.sample.sample_custom(cfa, noise, 5.0, comfy.samplers.sampler_object("euler"), sigmas, pos,
                                              neg, torch.zeros_like(noise), seed=1, disable_pbar=True))


def test_video_model_nodes(pack, svd):
    """ExVideo's added tensors stay in the compute dtype (an fp8 copy of the table would be quantised, and reading
    between its rows under Hidden State Correction has no fp8 kernel); the cascade runs with and without it."""
    import comfy.samplers
    from scripts import tiny_models
    from zerovideo.nodes import _patching, exvideo, zerosmooth
    pos, neg = svd_conds(svd, 2, 2)
    noise = torch.randn(4, 4, 2, 2, generator=gen(2))
    computed = set()  # the dtype the U-Net's layers actually compute in (their outputs), seen while sampling
    hook = svd.model.diffusion_model.input_blocks[0][0].register_forward_hook(
        lambda mod, args, out: computed.add(out.dtype))
    try:
        plain = sample(svd, noise, pos, neg, steps=2)
    finally:
        hook.remove()
    assert len(computed) == 1 and not computed & set(_patching.FP8_DTYPES)
    ext = exvideo.apply_extension(svd, tiny_models.exvideo_extension(svd, 32, seed=1, perturb=0.05))
    extras = ext.additional_models[exvideo.KEY][0].model
    assert {b.dtype for b in extras.buffers()} == computed
    changed(sample(ext, noise, pos, neg, steps=2), plain)
    for model in (svd, ext):
        corrected = zerosmooth.HiddenStateCorrection.execute(model=model, strength=0.8, schedule="linear",
                                                             loop=False).args[0]
        guider, latent = zerosmooth.SelfCascadeInterpolate.execute(
            model=corrected, positive=pos, negative=neg, factor="x2", key_frames=4, cfg=2.0, color_fix=False,
            key_frames_video=None).args[:2]
        n = torch.randn(latent["samples"].shape, generator=gen(3))
        sigmas = comfy.samplers.calculate_sigmas(svd.get_model_object("model_sampling"), "karras", 2)
        out = guider.sample(n, latent["samples"], comfy.samplers.sampler_object("euler"), sigmas, seed=1,
                            disable_pbar=True)
        assert out.shape == (8, 4, 2, 2) and torch.isfinite(out).all()


@pytest.fixture(scope="module", params=["flux", "sd3", "z_image", "hidream"])
def dit(request, comfy, dtype_case):
    from scripts import tiny_models
    weight, compute = DTYPES[dtype_case]
    base = tiny_models.tiny_image_dit(request.param, seed=2)
    mp = tiny_models.with_weight_dtype(base, weight, compute)
    assert mp.model.get_dtype() == weight
    return request.param, mp


def test_dit_attention_nodes(pack, dit):
    """Cross-Frame and Temporal Momentum Attention on Flux, SD3, Z-Image and HiDream with every weight dtype: finite
    frames that the patch changed, frame 0 (its own anchor) as unpatched, μ = 1 as cross-frame attention."""
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    from zerovideo.nodes.zs2 import TemporalMomentumAttention
    family, mp = dit
    dim = 64 if family == "sd3" else 32

    def extra(s):
        out = {"pooled_output": torch.randn(1, dim, generator=gen(s + 5)), "guidance": 3.5}
        if family == "hidream":
            out["conditioning_llama3"] = torch.randn(1, 2, 5, 32, generator=gen(s + 7))
        return out
    pos, neg = ([[torch.randn(1, 7, dim, generator=gen(s)), extra(s)]] for s in (1, 2))
    noise = torch.randn(3, 16, 8, 8, generator=gen(1))
    plain = sample(mp, noise, pos, neg, steps=2, cfg=2.0, scheduler="simple")
    assert torch.isfinite(plain).all()
    cfa = CrossFrameAttentionPatch.execute(model=mp, anchor="first", start_percent=0.0, end_percent=1.0).args[0]
    cross = sample(cfa, noise, pos, neg, steps=2, cfg=2.0, scheduler="simple")
    changed(cross[1:], plain[1:])
    assert torch.equal(cross[:1], plain[:1])
    tma = TemporalMomentumAttention.execute(model=mp, mu=1.0, anchor_mix=0.0, start_percent=0.0,
                                            end_percent=1.0).args[0]
    assert torch.equal(sample(tma, noise, pos, neg, steps=2, cfg=2.0, scheduler="simple"), cross)
