"""Patched models cloned onto another instance of their model (issue 13).

Newer ComfyUI clones a patched ModelPatcher onto another model instance: MultiGPU CFG Split's per-GPU deep
clones, dynamic VRAM's non-dynamic delegates (`clone(model_override=...)`). Every patch must then act on the
clone's own modules. Here each node's output is cloned onto a second instance with the same weights, the first
instance is moved to PyTorch's meta device (any use of one of its modules fails: meta tensors do not mix with
real ones), and the clone's result must equal a fresh patch of a third instance.
"""
from __future__ import annotations

import copy
import inspect

import pytest
import torch
from zv_testing import flux_conds, gen, sample, sd15_conds, svd_conds


def onto(mp, model):
    """`mp.clone()` with `model` (another instance) as the clone's model, as newer ComfyUI's
    `clone(model_override=(model, fresh backups))` does; on hosts without that argument the same steps: the real
    `clone()` with the new instance handed to the constructor, then fresh backups (nothing is applied to the new
    instance yet). The clone callbacks run once the clone has its model, as upstream."""
    if "model_override" in inspect.signature(mp.clone).parameters:
        return mp.clone(model_override=(model, ({}, {}, {}, set())))
    cls = type(mp)

    class OntoAnotherInstance(cls):
        def __init__(self, _model, *args, **kwargs):
            super().__init__(model, *args, **kwargs)

    src = copy.copy(mp)
    src.__class__ = OntoAnotherInstance
    n = src.clone()
    n.__class__ = cls
    n.parent = mp
    n.backup, n.object_patches_backup = {}, {}
    return n


@pytest.fixture
def unloaded(comfy):
    comfy.unload_all_models()
    yield
    comfy.unload_all_models()


def check(make, patch, run):
    """patch(make()) cloned onto make().model gives run(patch(make())), with the first instance unusable."""
    import comfy.model_management as mm
    first = make()
    patched = patch(first)
    clone = onto(patched, make().model)
    reference = run(patch(make()))
    mm.unload_all_models()
    first.model.to("meta")  # any module of the first instance that still runs now raises
    out = run(clone)
    assert torch.equal(out, reference)
    return clone


def sd15_run(frames=4):
    def run(mp):
        pos, neg = sd15_conds(mp)
        return sample(mp, torch.randn(frames, 4, 8, 8, generator=gen(5)), pos, neg, steps=2)
    return run


def svd_run(frames=6):
    def run(mp):
        pos, neg = svd_conds(mp, 2, 2)
        return sample(mp, torch.randn(frames, 4, 2, 2, generator=gen(5)), pos, neg, steps=2, cfg=2.0)
    return run


def sd15():
    from scripts import tiny_models
    return tiny_models.tiny_sd15(seed=21)


def svd():
    from scripts import tiny_models
    return tiny_models.tiny_svd(seed=22)


def test_cross_frame_attention(pack, unloaded):
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    check(sd15, lambda m: CrossFrameAttentionPatch.execute(model=m, anchor="first", start_percent=0.0,
                                                           end_percent=1.0).args[0], sd15_run())


def test_temporal_momentum_attention(pack, unloaded):
    from zerovideo.nodes.zs2 import TemporalMomentumAttention
    check(sd15, lambda m: TemporalMomentumAttention.execute(model=m, mu=0.6, anchor_mix=0.2, start_percent=0.0,
                                                            end_percent=1.0).args[0], sd15_run())


def test_dependency_noise_model(pack, unloaded):
    from zerovideo.nodes.zs2 import DependencyNoiseModel
    check(sd15, lambda m: DependencyNoiseModel.execute(model=m, noise_lambda=1.0, mode="closed_form", videos=1,
                                                       per_step_noise=True).args[0], sd15_run())


@pytest.mark.parametrize("mode", ["interpolate", "ping-pong"])
def test_exvideo_training_free(pack, unloaded, mode):
    from zerovideo.nodes.exvideo import training_free
    check(svd, lambda m: training_free(m, mode), svd_run(frames=30))


def test_exvideo_weights(pack, unloaded):
    from scripts import tiny_models
    from zerovideo.nodes.exvideo import KEY, apply_extension
    sd = tiny_models.exvideo_extension(svd(), 64, seed=3, perturb=0.05)  # a trained Conv3d and table
    clone = check(svd, lambda m: apply_extension(m, sd), svd_run(frames=30))
    assert clone.get_additional_models_with_key(KEY)


def test_exvideo_weights_deep_clone_for_another_device(pack, unloaded):
    """MultiGPU CFG Split's deep clone (newer ComfyUI's `deepclone_multigpu`): the clone gets another model
    instance, every additional model is rebuilt from its `cached_patcher_init` factory, then the
    ON_DEEPCLONE_MULTIGPU callbacks run. Those steps here (the pinned host has no multi-GPU clones): the clone
    must then use neither the first instance nor the first table / Conv3d."""
    import comfy.model_management as mm
    from scripts import tiny_models
    from zerovideo.nodes import exvideo
    sd = tiny_models.exvideo_extension(svd(), 64, seed=3, perturb=0.05)
    first = svd()
    patched = exvideo.apply_extension(first, sd)
    clone = onto(patched, svd().model)
    (extras,) = patched.get_additional_models_with_key(exvideo.KEY)
    factory, args = extras.cached_patcher_init
    clone.set_additional_models(exvideo.KEY, [factory(*args)])
    exvideo._use_own_extras(patched, clone)
    reference = svd_run(frames=30)(exvideo.apply_extension(svd(), sd))
    mm.unload_all_models()
    first.model.to("meta")
    extras.model.to("meta")
    assert torch.equal(svd_run(frames=30)(clone), reference)


def test_hidden_state_correction_in_a_cascade(pack, unloaded):
    import comfy.samplers
    from zerovideo.nodes.zerosmooth import HiddenStateCorrection, SelfCascadeInterpolate

    def run(mp):
        pos, neg = svd_conds(mp, 2, 2)
        guider, latent = SelfCascadeInterpolate.execute(model=mp, positive=pos, negative=neg, factor="x2",
                                                        key_frames=4, cfg=2.0, color_fix=False,
                                                        key_frames_video=None).args[:2]
        sigmas = comfy.samplers.calculate_sigmas(mp.get_model_object("model_sampling"), "karras", 2)
        noise = torch.randn(latent["samples"].shape, generator=gen(1))
        return guider.sample(noise, latent["samples"], comfy.samplers.sampler_object("euler"), sigmas, seed=1,
                             disable_pbar=True)
    check(svd, lambda m: HiddenStateCorrection.execute(model=m, strength=0.8, schedule="linear",
                                                       loop=False).args[0], run)


def tiny(builder: str, **kw):
    from scripts import tiny_models
    return getattr(tiny_models, builder)(**kw)


# family -> (model, ControlNet for it, conditioning, latent channels)
CONTROLNETS = {"sd15": (sd15, lambda: tiny("tiny_controlnet", seed=23), sd15_conds, 4),
               "flux": (lambda: tiny("tiny_flux", seed=2), lambda: tiny("tiny_flux_controlnet", seed=23), flux_conds,
                        16)}


def controlled_run(cn, frames=4, conds=sd15_conds, channels=4):
    def run(mp):
        pos, neg = conds(mp)
        hint = torch.rand(frames, 3, 64, 64, generator=gen(11))
        both = [[[c[0], dict(c[1], control=cn.copy().set_cond_hint(hint, 1.0, (0.0, 1.0)))] for c in x]
                for x in (pos, neg)]
        return sample(mp, torch.randn(frames, channels, 8, 8, generator=gen(5)), *both, steps=2)
    return run


def cross_frame_controlnet(cn, model=None):
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    return CrossFrameAttentionPatch.execute(model=model or sd15(), anchor="first", start_percent=0.0,
                                            end_percent=1.0, control_net=cn).args[1]


@pytest.mark.parametrize("family", sorted(CONTROLNETS))
def test_cross_frame_controlnet_copy_for_another_device(pack, unloaded, family):
    """MultiGPU CFG Split deep-clones each ControlNet for each device (`deepclone_multigpu`): the copy keeps its
    cross-frame patches, on its own control model, with its own per-call state (a U-Net's ControlNet and a
    Flux ControlNet)."""
    import comfy.model_management as mm
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    make_model, make_controlnet, conds, channels = CONTROLNETS[family]
    first = make_controlnet()
    cn = cross_frame_controlnet(first, make_model())
    copy_ = cn.deepclone_multigpu(torch.device("cpu"), autoregister=True)
    assert cn.multigpu_clones[torch.device("cpu")] is copy_
    assert copy_.zv_state is not cn.zv_state and copy_.control_model is not cn.control_model
    assert len(copy_.control_model_wrapped.object_patches) == len(cn.control_model_wrapped.object_patches) > 0
    model = make_model()
    patched = CrossFrameAttentionPatch.execute(model=model, anchor="first", start_percent=0.0,
                                               end_percent=1.0).args[0]
    reference = controlled_run(cross_frame_controlnet(make_controlnet(), model), conds=conds,
                               channels=channels)(patched)
    mm.unload_all_models()
    first.control_model.to("meta")  # the source's control model must not run for the copy
    assert torch.equal(controlled_run(copy_, conds=conds, channels=channels)(patched), reference)
