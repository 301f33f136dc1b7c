"""Text2Video-Zero: cross-frame attention step time and peak memory vs the unpatched model (same run).

Goal (issue 3): ≤ 1.10 on CPU for the paper's single-anchor mode.
"""
from __future__ import annotations

from bench import models
from bench.common import compare


def patched(mp, anchor: str):
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    return CrossFrameAttentionPatch.execute(model=mp, anchor=anchor, start_percent=0.0, end_percent=1.0).args[0]


def run(device: str = "cpu", full: bool = False, repeats: int = 9):
    from scripts.comfy_env import import_pack
    import_pack()
    mp = models.sd15(full, device)
    frames, h, w = models.shape("sd15", full)
    pos, neg = models.sd15_conds(mp)
    call = lambda m: models.sampling_call(m, pos, neg, frames, h, w)  # noqa: E731
    return compare(
        "t2vz_cross_frame_attention" + models.suffix(full),
        ("SD1.5 unpatched", call(mp)),
        [(f"cross-frame attention, anchor={a}", call(patched(mp, a))) for a in ("first", "first+previous")],
        device=device, repeats=repeats, notes={"frames": frames, "size": [h, w], "steps": 2, "cfg": 5.0})


def run_sampler(device: str = "cpu", full: bool = False, repeats: int = 5, steps: int = 50):
    """The Text2Video-Zero Sampler (paper defaults t0 = 44, t1 = 47, DDIM) vs sampling the same video directly with
    the same model and schedule: s0 steps of frame 0 alone plus steps − s1 video steps against `steps` video
    steps (the README's cost statement)."""
    import comfy.sample
    import comfy.samplers
    import torch
    from scripts.comfy_env import import_pack
    import_pack()
    from zerovideo.kernels.warp import paper_steps
    from zerovideo.nodes.text2video_zero import Text2VideoZeroSampler
    mp = patched(models.sd15(full, device), "first")
    frames, h, w = models.shape("sd15", full)
    pos, neg = models.sd15_conds(mp)
    sigmas = comfy.samplers.calculate_sigmas(mp.get_model_object("model_sampling"), "ddim_uniform", steps)
    noise = torch.randn(frames, 4, h // 8, w // 8, generator=torch.Generator().manual_seed(0))
    ddim = comfy.samplers.sampler_object("ddim")
    t2vz_sampler = Text2VideoZeroSampler.execute(sampler=ddim, motion_x=12.0, motion_y=12.0, zoom=1.0, rotation=0.0,
                                                 t0=44, t1=47, interpolation="nearest").args[0]

    def call(sampler):
        return lambda: comfy.sample.sample_custom(mp, noise, 7.5, sampler, sigmas, pos, neg, torch.zeros_like(noise),
                                                  seed=0, disable_pbar=True)
    s1, s0 = paper_steps(steps, 44, 47)
    return compare("t2vz_sampler" + models.suffix(full), (f"direct sampling, {steps} DDIM steps", call(ddim)),
                   [("Text2Video-Zero Sampler (t0 44, t1 47)", call(t2vz_sampler))], device=device, repeats=repeats,
                   notes={"frames": frames, "size": [h, w], "steps": steps, "s1": s1, "s0": s0,
                          "model_calls_ratio": (steps - s1 + s0) / steps,
                          "frame_steps_ratio": (frames * (steps - s1) + s0) / (frames * steps)})
