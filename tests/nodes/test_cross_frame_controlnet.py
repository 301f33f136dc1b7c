"""Cross-frame attention inside a ControlNet (the paper's ControlNet video mode), on tiny real objects."""
import functools

import pytest
import torch
from zv_testing import assert_close_scaled, flux_conds, force_split_cond_uncond, gen, sample, sd15_conds


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


def run(model, cn, frames, split=False, conds=sd15_conds, channels=4):
    pos, neg = conds(model)
    if split:
        model = force_split_cond_uncond(model.clone())
    noise = torch.randn(frames, channels, 8, 8, generator=gen(12))
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
    sdxl, controlnet = tiny_models.tiny_sdxl(seed=6), tiny_models.tiny_controlnet(seed=7, family="SDXL")
    m, cn = node.execute(model=sdxl, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    model_only = node.execute(model=sdxl, anchor="first", start_percent=0.0, end_percent=1.0).args[0]
    both = run(m, cn, 3, conds=sdxl_conds)
    unet_only = run(model_only, controlnet, 3, conds=sdxl_conds)
    assert torch.isfinite(both).all()
    assert (both[1:] - unet_only[1:]).abs().max() > 1e-3 * unet_only.abs().max()
    # frame 0 in a batch of 3 vs alone: CPU kernels round by batch size (3.5e-6-4.6e-6 of the scale measured at
    # 1-4 threads); the bound follows the output scale with room for other CPUs
    assert_close_scaled(both[:1], run(model_only, controlnet, 1, conds=sdxl_conds), tol=1e-4)


def test_unpatched_controlnet_still_runs_plain_after_the_patched_one(node, sd15, controlnet):
    before = run(sd15, controlnet, 2)
    m, cn = node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    run(m, cn, 2)
    assert torch.equal(run(sd15, controlnet, 2), before)  # object patches were removed again


def test_non_controlnet_objects_are_refused(node, sd15):
    with pytest.raises(ValueError, match="must be a standard ControlNet"):
        node.execute(model=sd15, anchor="first", start_percent=0.0, end_percent=1.0, control_net=object())


def sd3_conds(mp=None, frames: int = 1):
    """The tiny SD3's conditioning (64-wide prompt of 7 tokens, 64-wide pooled vector), a positive prompt per
    frame."""
    return tuple([[torch.randn(frames if s == 1 else 1, 7, 64, generator=gen(s)),
                   {"pooled_output": torch.randn(1, 64, generator=gen(s + 5))}]] for s in (1, 2))


def tiny_sd3_controlnet(seed: int):
    """An SD3 MMDiT ControlNet (comfy.cldm.mmdit, as ComfyUI loads InstantX-style SD3 ControlNets) for the tiny
    SD3; its hint is a 3-channel image at the latent's size here (the real ones VAE-encode it: same blocks)."""
    import comfy.cldm.mmdit
    import comfy.controlnet
    import comfy.ops
    from scripts import tiny_models
    net = comfy.cldm.mmdit.ControlNet(num_blocks=1, control_latent_channels=3, operations=comfy.ops.disable_weight_init,
                                      **tiny_models.SD3_TINY_DIT)
    tiny_models.init_weights(net, seed)
    return comfy.controlnet.ControlNet(net, compression_ratio=1)


# family -> (model, its ControlNet, conditioning (frames=N: a prompt per frame), heads axis first in the attention call)
DIT_CONTROLNETS = {
    "Flux (XLabs-style)": (lambda t: t.tiny_flux(seed=2), lambda t: t.tiny_flux_controlnet(seed=7), flux_conds, True),
    "Flux Union (control-mode token)": (lambda t: t.tiny_flux(seed=2),
                                        lambda t: t.tiny_flux_controlnet(seed=7, union_modes=2), flux_conds, True),
    "SD3 (MMDiT)": (lambda t: t.tiny_sd3(seed=2), lambda t: tiny_sd3_controlnet(7), sd3_conds, False)}


@pytest.mark.parametrize("family", list(DIT_CONTROLNETS))
def test_a_dit_controlnet_is_cross_frame_too(node, comfy, monkeypatch, family):
    """The ControlNet video mode on Flux and SD3 ControlNets (their blocks get the DiT K/V patch). Every attention
    call of the ControlNet, seen from outside the pack's override: queries untouched, each frame's text tokens its
    own (a Union ControlNet's control-mode token leads them; a prompt per frame, so they differ), every frame's
    image-token keys/values frame 0's. Frame 0 comes out as alone, the other frames changed, and outside its sigma
    range the ControlNet computes exactly what the plain one does."""
    from scripts import tiny_models
    from zerovideo.nodes import _dit
    make_model, make_controlnet, conds, heads_first = DIT_CONTROLNETS[family]
    model, controlnet = make_model(tiny_models), make_controlnet(tiny_models)
    union = "Union" in family
    if union:
        controlnet = controlnet.copy()
        controlnet.set_extra_arg("control_type", [1])  # what Set Union ControlNet Type does
    text, image = 7 + union, 16  # prompt (+ mode) tokens; an 8×8 latent in 2×2 patches
    m, cn = node.execute(model=model, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    model_only = node.execute(model=model, anchor="first", start_percent=0.0, end_percent=1.0).args[0]
    seen = []
    dispatch = _dit.dispatch

    def outside(func, q, k, v, *rest, **kw):
        def attention(q2, k2, v2, *r, **kw2):
            seen.append((q, k, v, q2, k2, v2))
            return func(q2, k2, v2, *r, **kw2)
        return dispatch(attention, q, k, v, *rest, **kw)
    monkeypatch.setattr(_dit, "dispatch", outside)  # the ControlNet's calls look it up per call
    frames = 3
    per_frame = functools.partial(conds, frames=frames)  # a prompt per frame
    both = run(m, cn, frames, conds=per_frame, channels=16)
    monkeypatch.undo()
    assert len(seen) == 2 * 2 * len(_dit_blocks(cn))  # two steps, cond and uncond (a copy each), every block
    for q, k, v, q2, k2, v2 in seen:
        assert q2 is q and k.shape[0] == frames
        for before, after in ((k, k2), (v, v2)):
            if heads_first:  # Flux: (frames, heads, tokens, head dim); SD3: (frames, tokens, channels…)
                before, after = before.transpose(1, 2), after.transpose(1, 2)
            assert before.shape[1] == text + image
            assert torch.equal(after[:, :text], before[:, :text])
            assert torch.equal(after[:, text:], before[:1, text:].expand_as(before[:, text:]))
    plain = run(model_only, controlnet, frames, conds=per_frame, channels=16)
    assert torch.isfinite(both).all()
    assert (both[1:] - plain[1:]).abs().max() > 1e-3 * plain.abs().max()  # the ControlNet's attention changed
    assert_close_scaled(both[:1], run(model_only, controlnet, 1, conds=conds, channels=16), tol=1e-4)
    # outside its sigma range (here: every step) the ControlNet computes exactly what the plain one does
    m_off, cn_off = node.execute(model=model, anchor="first", start_percent=1.0, end_percent=1.0,
                                 control_net=controlnet).args
    assert torch.equal(run(m_off, cn_off, frames, conds=per_frame, channels=16),
                       run(m_off, controlnet, frames, conds=per_frame, channels=16))


def _dit_blocks(cn) -> list:
    """The ControlNet's blocks the test expects patched: Flux's double and single blocks, SD3's joint blocks."""
    cm = cn.control_model
    return [*getattr(cm, "double_blocks", ()), *getattr(cm, "single_blocks", ()), *getattr(cm, "joint_blocks", ())]


def test_a_flux_controlnet_shared_by_cond_and_uncond_keeps_them_apart(node, comfy):
    """Apply ControlNet gives the positive and the negative the same ControlNet copy, so ComfyUI runs it once on
    cond and uncond together: each half anchors on its own frame 0, as with a copy per side (run apart)."""
    from scripts import tiny_models
    from zv_testing import sample
    flux, controlnet = tiny_models.tiny_flux(seed=2), tiny_models.tiny_flux_controlnet(seed=7)
    m, cn = node.execute(model=flux, anchor="first", start_percent=0.0, end_percent=1.0, control_net=controlnet).args
    pos, neg = flux_conds(frames=3)
    hint = torch.rand(3, 3, 64, 64, generator=gen(11))
    noise = torch.randn(3, 16, 8, 8, generator=gen(12))
    seen = []
    hook = cn.control_model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["x"].shape[0]),
                                                      with_kwargs=True)

    def video(controls):
        return sample(m, noise, *([[c[0], dict(c[1], control=control)] for c in conds]
                                  for conds, control in zip((pos, neg), controls)), steps=2, cfg=2.0)
    try:
        shared = cn.copy().set_cond_hint(hint, 1.0, (0.0, 1.0))
        together = video((shared, shared))
        assert set(seen) == {6}  # one ControlNet call on cond and uncond
        seen.clear()
        apart = video([cn.copy().set_cond_hint(hint, 1.0, (0.0, 1.0)) for _ in range(2)])
        assert set(seen) == {3}
    finally:
        hook.remove()
    assert_close_scaled(together, apart, tol=1e-4)  # batches of 6 vs 3: rounding only


def test_another_dit_controlnet_is_refused_by_name_with_what_to_do(node, comfy):
    """SD3.5-Large's ControlNets (a ControlNetEmbedder of image-only blocks that call attention without
    transformer_options): the ControlNet video mode cannot take them."""
    import comfy.cldm.dit_embedder
    import comfy.controlnet
    import comfy.ops
    from scripts import tiny_models
    from zv_testing import exactly
    net = comfy.cldm.dit_embedder.ControlNetEmbedder(
        img_size=None, patch_size=2, in_chans=16, attention_head_dim=32, num_attention_heads=2, adm_in_channels=64,
        num_layers=1, main_model_double=2, double_y_emb=False, device=None, dtype=None, pos_embed_max_size=16,
        operations=comfy.ops.disable_weight_init)
    sd3 = tiny_models.tiny_image_dit("sd3", seed=2)
    with pytest.raises(ValueError, match=exactly(
            "Cross-Frame Attention: control_net is a ControlNetEmbedder, which has no U-Net self-attention to make "
            "cross-frame (this input takes SD1.x, SD2.x, SDXL, Flux and SD3 ControlNets). For another DiT's "
            "ControlNet leave control_net unconnected and apply the ControlNet as usual: the model's own attention "
            "is cross-frame, and the Text2Video-Zero Sampler gives every frame its own hint.")):
        node.execute(model=sd3, anchor="first", start_percent=0.0, end_percent=1.0,
                     control_net=comfy.controlnet.ControlNet(net))
