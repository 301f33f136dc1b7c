"""Distilled and pruned U-Net layouts (BK-SDM-style SD1.5 without a middle block, KOALA/Vega-style SDXL
derivatives with fewer or deeper stacks, uneven blocks per level): every image-model node works on each layout
ComfyUI's model detection accepts, with the same identities as on the stock layout, or refuses it by name."""
import pytest
import torch
from zv_testing import assert_close_scaled, cross_frame, gen, momentum, sample, sd15_conds, sdxl_conds, with_reference

SD15 = {
    # BK-SDM (Kim et al. 2023): the middle block removed, one res block per level
    "bk-sdm (no middle block)": dict(transformer_depth_middle=-2),
    "middle block without attention": dict(transformer_depth_middle=-1),
    "uneven blocks per level": dict(num_res_blocks=[2, 1], transformer_depth=[1, 1, 1],
                                    transformer_depth_output=[1, 1, 1, 1, 1]),
    "no attention on the first level": dict(transformer_depth=[0, 1], transformer_depth_output=[0, 0, 1, 1]),
}
SDXL = {
    # KOALA (Lee et al. 2023): three levels, deeper stacks at the lowest resolution, one block per level
    "koala-like": dict(channel_mult=[1, 2, 2], num_res_blocks=[1, 1, 1], transformer_depth=[0, 1, 2],
                       transformer_depth_output=[0, 0, 1, 1, 2, 2], transformer_depth_middle=-2),
    # Segmind Vega / SSD-1B: SDXL with fewer blocks per stack
    "vega-like": dict(transformer_depth=[0, 1], transformer_depth_output=[0, 0, 1, 1], transformer_depth_middle=1),
}
LAYOUTS = [("sd15", k) for k in SD15] + [("sdxl", k) for k in SDXL]


@pytest.fixture(scope="module", params=LAYOUTS, ids=[k for _, k in LAYOUTS])
def variant(request, comfy):
    from scripts import tiny_models
    family, name = request.param
    if family == "sd15":
        mp = tiny_models.tiny_sd15(seed=5, **SD15[name])
        return mp, sd15_conds(mp)
    mp = tiny_models.tiny_sdxl(seed=5, **SDXL[name])
    return mp, sdxl_conds(mp)


def test_comfyui_detects_the_layout_from_its_weights(variant):
    import comfy.model_detection
    mp, _ = variant
    cfg = mp.model.model_config.unet_config
    detected = comfy.model_detection.detect_unet_config(mp.model.diffusion_model.state_dict(), "")
    for key in ("num_res_blocks", "transformer_depth", "transformer_depth_output", "transformer_depth_middle"):
        assert list(detected[key]) == list(cfg[key]) if isinstance(cfg[key], list) else detected[key] == cfg[key], key


def test_cross_frame_attention_matches_the_per_frame_reference_and_switches_off_exactly(pack, variant):
    mp, (pos, neg) = variant
    noise = torch.randn(3, 4, 8, 8, generator=gen(2))
    plain = sample(mp, noise, pos, neg, steps=2)
    ours = sample(cross_frame(mp), noise, pos, neg, steps=2)
    assert_close_scaled(ours, sample(with_reference(mp), noise, pos, neg, steps=2))
    assert float((ours - plain).abs().max()) > 1e-3 * max(1.0, float(plain.abs().max()))
    assert torch.equal(sample(cross_frame(mp, start=1.0, end=1.0), noise, pos, neg, steps=2), plain)


def test_momentum_identities(pack, variant):
    mp, (pos, neg) = variant
    noise = torch.randn(3, 4, 8, 8, generator=gen(3))
    assert_close_scaled(sample(momentum(mp, 1.0), noise, pos, neg, steps=2),
                        sample(cross_frame(mp), noise, pos, neg, steps=2))
    assert_close_scaled(sample(momentum(mp, 0.0), noise, pos, neg, steps=2), sample(mp, noise, pos, neg, steps=2))


def test_text2video_zero_sampler_and_dependency_noise_run(pack, variant):
    import comfy.sample
    import comfy.samplers
    from zerovideo.nodes.text2video_zero import Text2VideoZeroSampler
    from zerovideo.nodes.zs2 import DependencyNoiseModel
    mp, (pos, neg) = variant
    noise = torch.randn(3, 4, 8, 8, generator=gen(4))
    sampler = Text2VideoZeroSampler.execute(sampler=comfy.samplers.sampler_object("euler"), motion_x=12.0,
                                            motion_y=12.0, zoom=1.0, rotation=0.0, t0=30, t1=40,
                                            interpolation="nearest").args[0]
    sigmas = comfy.samplers.calculate_sigmas(mp.get_model_object("model_sampling"), "karras", 4)
    video = comfy.sample.sample_custom(cross_frame(mp), noise, 5.0, sampler, sigmas, pos, neg, torch.zeros_like(noise),
                                       seed=1, disable_pbar=True)
    assert torch.isfinite(video).all() and float((video[1:] - video[:1]).abs().max()) > 0
    dnm = DependencyNoiseModel.execute(model=mp, noise_lambda=0.1, mode="closed_form", videos=1,
                                       per_step_noise=False).args[0]
    assert torch.isfinite(sample(dnm, noise, pos, neg, steps=2)).all()


@pytest.mark.parametrize("node", ["CrossFrameAttentionPatch", "TemporalMomentumAttention", "HiddenStateCorrection",
                                  "ExVideoTemporalExtend"])
def test_a_unet_without_self_attention_or_a_non_svd_layout_is_refused_by_name(pack, comfy, node):
    """No attention anywhere (a pruned U-Net): the attention nodes have nothing to act on; the SVD-only nodes
    refuse every image layout. A ValueError naming the node and the model, never a TypeError from inside."""
    from scripts import tiny_models
    from zerovideo import nodes
    from zerovideo.nodes.exvideo import NO_FILE
    mp = tiny_models.tiny_sd15(seed=5, transformer_depth=[0, 0], transformer_depth_output=[0, 0, 0, 0],
                               transformer_depth_middle=-2)
    cls = next(n for n in nodes.NODES if n.__name__ == node)
    kwargs = {"CrossFrameAttentionPatch": dict(anchor="first", start_percent=0.0, end_percent=1.0),
              "TemporalMomentumAttention": dict(mu=0.9, anchor_mix=0.0, start_percent=0.0, end_percent=1.0),
              "HiddenStateCorrection": dict(strength=0.8, schedule="linear", loop=False),
              "ExVideoTemporalExtend": dict(mode="interpolate", extension=NO_FILE)}[node]
    display = cls.GET_SCHEMA().display_name.split(" (")[0]
    with pytest.raises(ValueError) as err:
        cls.execute(model=mp, **kwargs)
    assert "UNetModel" in str(err.value) and (display.split()[0] in str(err.value) or "ExVideo" in str(err.value))
