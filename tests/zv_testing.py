"""Helpers shared by the node tests: conditioning and sampling on the tiny in-process models."""
from __future__ import annotations

import contextlib
import re

import torch


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def context_dim(mp) -> int:
    dm = mp.get_model_object("diffusion_model")
    return next(m.to_k.in_features for n, m in dm.named_modules() if n.endswith("attn2"))


def sd15_conds(mp, seed: int = 1):
    dim = context_dim(mp)
    return ([[torch.randn(1, 77, dim, generator=gen(seed)), {}]],
            [[torch.randn(1, 77, dim, generator=gen(seed + 1)), {}]])


def sdxl_conds(mp, seed: int = 1, size: int = 64):
    """Text conds plus what SDXL's size/crop conditioning reads (pooled CLIP-G output, width, height)."""
    dim = context_dim(mp)
    return tuple([[torch.randn(1, 77, dim, generator=gen(seed + i)),
                   {"pooled_output": torch.randn(1, 1280, generator=gen(seed + 10 + i)), "width": size,
                    "height": size}]] for i in (0, 1))


def flux_conds(mp=None, seed: int = 1, frames: int = 1):
    """Positive and negative conditioning for the tiny Flux (and its ControlNets): 7 prompt tokens 32 wide, a pooled
    vector and the guidance Flux-dev reads. frames > 1: a positive prompt per frame (frame 0's is the same for
    any frame count)."""
    return tuple([[torch.randn(frames if s == seed else 1, 7, 32, generator=gen(s)),
                   {"pooled_output": torch.randn(1, 32, generator=gen(s + 5)), "guidance": 3.5}]]
                 for s in (seed, seed + 1))


def svd_conds(mp, h: int = 8, w: int = 8, seed: int = 1):
    dim = context_dim(mp)
    extra = {"concat_latent_image": torch.randn(1, 4, h, w, generator=gen(seed + 2)), "fps": 6,
             "motion_bucket_id": 127, "augmentation_level": 0.0}
    neg = dict(extra, concat_latent_image=torch.zeros(1, 4, h, w))
    return ([[torch.randn(1, 1, dim, generator=gen(seed)), extra]], [[torch.zeros(1, 1, dim), neg]])


def sample(mp, noise, positive, negative, steps=3, cfg=5.0, sampler="euler", scheduler="normal",
           latent=None, seed=0, **kw):
    import comfy.sample
    latent = torch.zeros_like(noise) if latent is None else latent
    return comfy.sample.sample(mp, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                               seed=seed, disable_pbar=True, **kw)


def cross_frame(model, anchor: str = "first", start: float = 0.0, end: float = 1.0):
    """CrossFrameAttentionPatch applied as the node does it (a patched clone)."""
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    return CrossFrameAttentionPatch.execute(model=model, anchor=anchor, start_percent=start,
                                            end_percent=end).args[0]


def momentum(model, mu: float, anchor_mix: float = 0.0):
    """TemporalMomentumAttention over the whole schedule (a patched clone)."""
    from zerovideo.nodes.zs2 import TemporalMomentumAttention
    return TemporalMomentumAttention.execute(model=model, mu=mu, anchor_mix=anchor_mix, start_percent=0.0,
                                             end_percent=1.0).args[0]


def attention_block_keys(mp) -> list[tuple[str, int]]:
    """(block name, number) of every transformer stack in the U-Net, as patches_replace keys them."""
    from zerovideo.nodes._patching import attention_keys
    return attention_keys(mp)


def reference_first_frame_attention(q, k, v, extra):
    """Independent reference: frame f of chunk c attends to frame 0 of chunk c, one frame at a time.

    It uses ComfyUI's own attention function per frame, so the only difference from the patch is how
    the anchor's keys and values are chosen.
    """
    from comfy.ldm.modules.attention import optimized_attention
    chunks = len(extra["cond_or_uncond"])
    frames = q.shape[0] // chunks
    out = torch.empty_like(q)
    for c in range(chunks):
        anchor = slice(c * frames, c * frames + 1)
        for f in range(frames):
            i = c * frames + f
            out[i:i + 1] = optimized_attention(q[i:i + 1], k[anchor], v[anchor], extra["n_heads"],
                                               attn_precision=extra["attn_precision"])
    return out


def with_reference(model):
    m = model.clone()
    for key in attention_block_keys(m):
        m.set_model_attn1_replace(reference_first_frame_attention, *key)
    return m


def force_split_cond_uncond(mp):
    """Make ComfyUI evaluate cond and uncond in separate U-Net calls (its low-memory path)."""
    mp.add_object_patch("memory_usage_factor", 1e12)
    return mp


def record_chunks(mp, seen: list):
    """An attn1 patch that records len(cond_or_uncond) of every call and changes nothing."""
    def rec(n, c, v, extra):
        seen.append(tuple(extra["cond_or_uncond"]))
        return n, c, v
    mp.set_model_attn1_patch(rec)
    return mp


@contextlib.contextmanager
def progress_calls():
    """The (value, total) of every ComfyUI progress-bar update inside the block (what the server's hook sees);
    the hook that was set before is put back afterwards."""
    import comfy.utils
    calls: list[tuple] = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: calls.append((value, total)))
    try:
        yield calls
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)


def with_context_windows(model, length=4, overlap=2):
    """What core's ContextWindowsManual node does (static standard schedule, pyramid fusion)."""
    import comfy.context_windows as cw
    m = model.clone()
    m.model_options["context_handler"] = cw.IndexListContextHandler(
        context_schedule=cw.get_matching_context_schedule(cw.ContextSchedules.STATIC_STANDARD),
        fuse_method=cw.get_matching_fuse_method(cw.ContextFuseMethods.PYRAMID),
        context_length=length, context_overlap=overlap, context_stride=1, closed_loop=False, dim=0)
    return m


def assert_close_scaled(a, b, tol: float = 1e-5):
    """max|a − b| ≤ tol · max(1, max|b|).

    For results of whole sampling runs: sampled latents are in the hundreds (unscaled latent space), and
    batching 1 vs F frames changes float32 rounding in the convolutions at the 1e-7 relative level.
    """
    scale = max(1.0, float(b.abs().max()))
    err = float((a - b).abs().max())
    assert err <= tol * scale, f"max abs difference {err:.3g} > {tol:g} x {scale:.3g}"


def tiny_prompt(object_info: dict, name: str, sets=()) -> dict:
    """A shipped workflow's API twin on the tiny models (as `host.py run` would send it), plus --set overrides."""
    from pathlib import Path

    from scripts import run_workflow
    from scripts.workflow import apply_sets, load
    api = load(Path(__file__).resolve().parents[1] / "workflows" / "api" / f"{name}.json")
    run_workflow.substitute_tiny(api, object_info)
    return apply_sets(api, list(sets))


def exactly(message: str) -> str:
    """A `pytest.raises(match=…)` pattern for this message and nothing around it."""
    return "^" + re.escape(message) + "$"


def recording_ancestral(draws: list):
    """euler_ancestral as a KSAMPLER that appends each per-step noise draw to `draws`. It takes a noise_sampler
    like ComfyUI's own ancestral samplers (so patches can hand it one), and falls back to ComfyUI's default."""
    import comfy.k_diffusion.sampling as ks
    import comfy.samplers

    def ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
        ns = noise_sampler or ks.default_noise_sampler(x, seed=extra_args.get("seed"))  # as ComfyUI does

        def recording(sigma, sigma_next):
            n = ns(sigma, sigma_next)
            draws.append(n.clone())
            return n
        return ks.sample_euler_ancestral(model, x, sigmas, extra_args=extra_args, callback=callback,
                                         disable=disable, noise_sampler=recording)
    return comfy.samplers.KSAMPLER(ancestral)
