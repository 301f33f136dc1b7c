"""ZeroSmooth ×2: time and peak memory vs sampling the same 2·t0 frames directly (goal ≤ 1.8× time), and the
share of the cost that the hidden-state correction (second attention pass) adds."""
from __future__ import annotations

import torch

from bench import models
from bench.common import compare


def run(device: str = "cpu", full: bool = False, repeats: int = 5):
    mp = models.svd(full, device)
    import comfy.samplers
    from scripts.comfy_env import import_pack
    import_pack()
    from zerovideo.nodes.zerosmooth import HiddenStateCorrection, SelfCascadeInterpolate
    t0, h, w = models.shape("svd", full)  # key frames: SVD-XT's 25 at full size
    pos, neg = models.svd_conds(mp, h, w)
    sigmas = comfy.samplers.calculate_sigmas(mp.get_model_object("model_sampling"), "karras", 2)
    sampler = comfy.samplers.sampler_object("euler")
    noise = torch.randn(2 * t0, 4, h // 8, w // 8, generator=torch.Generator().manual_seed(0))

    def cascade(model):
        guider, latent = SelfCascadeInterpolate.execute(model=model, positive=pos, negative=neg, factor="x2",
                                                        key_frames=t0, cfg=2.5, color_fix=False).args
        return lambda: guider.sample(noise, latent["samples"], sampler, sigmas, seed=0, disable_pbar=True)
    corrected = HiddenStateCorrection.execute(model=mp, strength=0.8, schedule="linear", loop=False).args[0]
    results = compare(
        "zerosmooth_x2" + models.suffix(full),
        (f"direct sampling of {2 * t0} frames", models.sampling_call(mp, pos, neg, 2 * t0, h, w, cfg=2.5)),
        [("ZeroSmooth x2 without correction", cascade(mp)), ("ZeroSmooth x2 with correction", cascade(corrected))],
        device=device, repeats=repeats, notes={"key_frames": t0, "size": [h, w], "steps": 2})
    share = 1 - results[1].median_s / results[2].median_s
    print(f"share of the x2 run spent on the correction (second attention pass, captures): {share:.1%}")
    return results
