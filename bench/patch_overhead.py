"""What ComfyUI's attn1 patch path costs by itself: an identity attn1 patch vs the unpatched model.

This is the floor under every attention technique of the pack; the technique benchmarks subtract
nothing from it, they report their own ratio against the same unpatched model.
"""
from __future__ import annotations

from bench import models
from bench.common import compare


def identity_attn1(n, context, value, extra_options):
    return n, context, value


def run(device: str = "cpu", full: bool = False, repeats: int = 9):
    mp = models.sd15(full, device)
    frames, h, w = models.shape("sd15", full)
    pos, neg = models.sd15_conds(mp)
    patched = mp.clone()
    patched.set_model_attn1_patch(identity_attn1)
    return compare(
        "patch_overhead" + models.suffix(full),
        ("SD1.5 unpatched", models.sampling_call(mp, pos, neg, frames, h, w)),
        [("SD1.5 + identity attn1 patch", models.sampling_call(patched, pos, neg, frames, h, w))],
        device=device, repeats=repeats,
        notes={"frames": frames, "size": [h, w], "steps": 2, "cfg": 5.0})
