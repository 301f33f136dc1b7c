"""Cross-frame attention inside a ControlNet (the paper's ControlNet video mode), on tiny real objects."""
import pytest
import torch
from zv_testing import assert_close_scaled, force_split_cond_uncond, gen, sample, sd15_conds


@pytest.fixture(scope="module")
def sd15(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_sd15(seed=6)


@pytest.fixture(scope="module")
def controlnet(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_controlnet(seed=7)


@pytest.fixture(scope="module")
def node(pack):
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    return CrossFrameAttentionPatch


def controlled(conds, cn, frames):
    hint = torch.rand(frames, 3, 64, 64, generator=gen(11))
    applied = cn.copy().set_cond_hint(hint, 1.0, (0.0, 1.0))  # what Apply ControlNet does
    return [[c[0], dict(c[1], control=applied)] for c in conds]


def run(model, cn, frames, split=False, conds=sd15_conds):
    pos, neg = conds(model)
    if split:
        model = force_split_cond_uncond(model.clone())
    noise = torch.randn(frames, 4, 8, 8, generator=gen(12))
    return sample(model, noise, controlled(pos, cn, frames), controlled(neg, cn, frames), steps=2)


def test_returns_a_patched_copy_and_leaves_the_controlnet_alone(node, sd15, controlnet):
    m, cn = node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    assert cn is not controlnet and cn.control_model is controlnet.control_model
    assert cn.control_model_wrapped is not controlnet.control_model_wrapped
    assert not controlnet.control_model_wrapped.object_patches
    assert len(cn.control_model_wrapped.object_patches) > 0
    assert type(cn.copy()) is type(cn)  # Apply ControlNet copies it: the copy must stay cross-frame
    assert node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0).args[1] is None


@pytest.mark.parametrize("split", [False, True], ids=["together", "cond/uncond split"])
def test_frame_zero_is_unchanged_and_other_frames_follow_the_anchor(node, sd15, controlnet, split):
    m, cn = node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    model_only = node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0).args[0]
    both = run(m, cn, 3, split)
    unet_only = run(model_only, controlnet, 3, split)
    assert torch.isfinite(both).all()
    assert (both[1:] - unet_only[1:]).abs().max() > 1e-3  # the ControlNet's attention did change
    single = run(model_only, controlnet, 1, split)  # frame 0 attends only to itself in both nets
    assert_close_scaled(both[:1], single)


def test_an_sdxl_controlnet_is_cross_frame_too(node, comfy):
    """The same check on SDXL's layout (linear projections in the transformer, the pooled/size vector passed to
    the ControlNet): frame 0 as alone, the other frames changed by the ControlNet's cross-frame attention."""
    from scripts import tiny_models
    from zv_testing import sdxl_conds
    sdxl, controlnet = tiny_models.tiny_sdxl(seed=6), tiny_models.tiny_sdxl_controlnet(seed=7)
    m, cn = node.execute(model=sdxl, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    model_only = node.execute(model=sdxl, anchor="first", start_percent=0.0, end_percent=1.0).args[0]
    both = run(m, cn, 3, conds=sdxl_conds)
    unet_only = run(model_only, controlnet, 3, conds=sdxl_conds)
    assert torch.isfinite(both).all()
    assert (both[1:] - unet_only[1:]).abs().max() > 1e-3 * unet_only.abs().max()
    assert_close_scaled(both[:1], run(model_only, controlnet, 1, conds=sdxl_conds))


def test_unpatched_controlnet_still_runs_plain_after_the_patched_one(node, sd15, controlnet):
    before = run(sd15, controlnet, 2)
    m, cn = node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    run(m, cn, 2)
    assert torch.equal(run(sd15, controlnet, 2), before)  # object patches were removed again


def test_non_controlnet_objects_are_refused(node, sd15):
    with pytest.raises(ValueError, match="must be a standard ControlNet"):
        node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0, control_net=object())


def test_a_dit_controlnet_is_refused_by_name_with_what_to_do(node, comfy):
    """A Flux ControlNet has joint DiT blocks, no U-Net self-attention: the ControlNet video mode cannot take it."""
    from scripts import tiny_models
    from zv_testing import exactly
    flux, cn = tiny_models.tiny_flux(seed=2), tiny_models.tiny_flux_controlnet(seed=7)
    with pytest.raises(ValueError, match=exactly(
            "Cross-Frame Attention: control_net is a ControlNetFlux, which has no U-Net self-attention to make "
            "cross-frame (this input takes SD1.x, SD2.x and SDXL ControlNets). For a DiT's ControlNet leave "
            "control_net unconnected and apply the ControlNet as usual: the model's own attention is cross-frame, "
            "and the Text2Video-Zero Sampler gives every frame its own hint.")):
        node.execute(model=flux, anchor="first", start_percent=0.0, end_percent=1.0, control_net=cn)
