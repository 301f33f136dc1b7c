"""ZS²: dependency-noise cost vs one sampler step, search vs closed form, and temporal momentum attention
vs the unpatched model and vs a naive F×F-matrix EMA (goals from issue 4: noise ≤ 1% of a step, TMA ≤ 1.10).
"""
from __future__ import annotations

import statistics
import time

import torch

from bench import models
from bench.common import compare, save_table


def naive_momentum(x: torch.Tensor, chunks: int, mu: float) -> torch.Tensor:
    """The EMA as an explicit F×F lower-triangular weight matrix (what the scan avoids)."""
    xf = x.view(chunks, x.shape[0] // chunks, -1)
    frames = xf.shape[1]
    i = torch.arange(frames)
    w = torch.where(i[:, None] >= i[None, :], (1 - mu) * mu ** (i[:, None] - i[None, :]).clamp(min=0).double(), 0.0)
    w[:, 0] = mu ** i.double()
    w = torch.tril(w).to(x.dtype)
    return torch.einsum("ab,cbn->can", w, xf).reshape(x.shape)


def _median_time(fn, repeats=7):
    fn()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def run(device: str = "cpu", full: bool = False, repeats: int = 9):
    from scripts.comfy_env import import_pack
    import_pack()
    from zerovideo.kernels import noise as dnm
    from zerovideo.kernels.attention import momentum_kv
    mp = models.sd15(full, device)
    from zerovideo.nodes.zs2 import TemporalMomentumAttention
    frames, h, w = models.shape("sd15", full)
    pos, neg = models.sd15_conds(mp)
    call = lambda m, steps=2: models.sampling_call(m, pos, neg, frames, h, w, steps=steps)  # noqa: E731
    tma = TemporalMomentumAttention.execute(model=mp, mu=0.98, anchor_mix=0.0, start_percent=0.0,
                                            end_percent=1.0).args[0]
    results = compare("zs2_tma" + models.suffix(full), ("SD1.5 unpatched", call(mp)),
                      [("temporal momentum attention mu=0.98", call(tma))], device=device, repeats=repeats,
                      notes={"frames": frames, "size": [h, w], "steps": 2})

    step = results[0].median_s / 2
    shape = (frames, 4, h // 8, w // 8)
    g = torch.Generator().manual_seed(0)
    closed = _median_time(lambda: dnm.dependency_noise(shape, 0.01, g, "closed_form"))
    search = _median_time(lambda: dnm.dependency_noise(shape, 0.01, g, "search"), repeats=3)
    print(f"\n== zs2 dependency noise ({device}), {frames} frames {h}x{w} ==")
    print(f"closed_form: {closed * 1000:.2f} ms = {closed / step:.4f} of one sampler step ({step * 1000:.1f} ms)")
    print(f"search:      {search * 1000:.2f} ms = {search / closed:.1f}x closed_form, {search / step:.3f} of a step")

    rows = {"noise_closed_form_s": closed, "noise_search_s": search, "sampler_step_s": step,
            "noise_closed_form_share_of_step": closed / step, "search_over_closed_form": search / closed}
    print("\n== EMA scan vs naive FxF matrix (2 chunks, 16² tokens x 320 channels per frame) ==")
    for f in (16, 64, 128):
        x = torch.randn(2 * f, 256, 320)
        scan = _median_time(lambda: momentum_kv(x, 2, 0.98))
        mat = _median_time(lambda: naive_momentum(x, 2, 0.98))
        err = float((momentum_kv(x, 2, 0.98) - naive_momentum(x, 2, 0.98)).abs().max())
        rows[f"ema_F{f}"] = {"scan_s": scan, "matrix_s": mat, "matrix_over_scan": mat / scan, "max_diff": err}
        print(f"F={f:4d}: scan {scan * 1000:7.2f} ms   matrix {mat * 1000:7.2f} ms   ratio {mat / scan:5.2f}"
              f"   max diff {err:.1e}")
    save_table("zs2_noise_and_ema" + models.suffix(full), device, rows, {"frames": frames, "size": [h, w]})
    return results
