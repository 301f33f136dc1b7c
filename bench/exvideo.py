"""ExVideo: step time and peak memory of the extended vs the stock SVD at T = 25, 64, 128 frames (goal: linear
memory in T, ≤ 1.15× time at equal T)."""
from __future__ import annotations

from bench import models
from bench.common import compare, save_table


def run(device: str = "cpu", full: bool = False, repeats: int = 3):
    mp = models.svd(full, device)
    from scripts import tiny_models
    from scripts.comfy_env import import_pack
    import_pack()
    from zerovideo.nodes.exvideo import apply_extension
    # On its own instance of the same weights: ExVideo's weight patches on a shared instance would be taken off and
    # put back at every switch between the variants (833 M parameters at full size), which is not what a user's
    # graph pays and would swamp the time and memory figures.
    extended = apply_extension(models.svd(full, device), tiny_models.exvideo_extension(mp, 128, perturb=1e-3))
    h, w = (512, 512) if full else (32, 32)
    lengths = (25, 64, 128)
    if models.OVERRIDE:  # full-size architecture at a reduced shape (CPU): T and 2T
        t, h, w = models.shape("svd", full)
        lengths = (t, 2 * t)
    pos, neg = models.svd_conds(mp, h, w)
    rows = {}
    for frames in lengths:
        res = compare(f"exvideo_T{frames}" + models.suffix(full),
                      (f"stock SVD, {frames} frames",
                       models.sampling_call(mp, pos, neg, frames, h, w, steps=1, cfg=2.0)),
                      [(f"ExVideo, {frames} frames", models.sampling_call(extended, pos, neg, frames, h, w, steps=1,
                                                                          cfg=2.0))],
                      device=device, repeats=repeats, write=False)
        rows[frames] = {"stock_s": res[0].median_s, "exvideo_s": res[1].median_s, "time_ratio": res[1].time_ratio,
                        "stock_peak_bytes": res[0].peak_mem_bytes, "exvideo_peak_bytes": res[1].peak_mem_bytes}
    print("\nT     time x   ExVideo time/T (ms)   ExVideo peak/T (MiB)")
    for frames, r in rows.items():
        print(f"{frames:<5} {r['time_ratio']:6.3f}   {r['exvideo_s'] / frames * 1000:10.2f}"
              f"            {r['exvideo_peak_bytes'] / frames / 2**20:8.2f}")
    save_table("exvideo_scaling" + models.suffix(full), device, rows, {"size": [h, w], "steps": 1})
    return rows
