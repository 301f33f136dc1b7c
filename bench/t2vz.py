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
    frames, h, w = models.SD15_SHAPES["full" if full else "tiny"]
    pos, neg = models.sd15_conds(mp)
    call = lambda m: models.sampling_call(m, pos, neg, frames, h, w)  # noqa: E731
    return compare(
        "t2vz_cross_frame_attention" + ("_full" if full else ""),
        ("SD1.5 unpatched", call(mp)),
        [(f"cross-frame attention, anchor={a}", call(patched(mp, a))) for a in ("first", "first+previous")],
        device=device, repeats=repeats, notes={"frames": frames, "size": [h, w], "steps": 2, "cfg": 5.0})
