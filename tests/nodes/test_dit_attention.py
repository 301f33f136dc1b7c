"""Cross-Frame Attention and Temporal Momentum Attention on DiT image models: tiny random-weight Flux and SD3
built from ComfyUI's own classes, sampled by ComfyUI's samplers.

The reference attention is written here from the technique's definition (per frame: queries and text tokens of
the frame, image-token keys/values of the anchor frame) with a plain softmax, on the q/k/v that the unpatched
model hands its attention function."""
import math

import pytest
import torch
from zv_testing import (assert_close_scaled, cross_frame, force_split_cond_uncond, gen, momentum, sample,
                        with_context_windows)

FAMILIES = ["flux", "sd3", "sd3.5 (MMDiT-X)", "sd3-registers", "chroma", "auraflow", "qwen_image", "flux2", "lumina2",
            "z_image", "hidream"]
# (channels, …) of a frame; others (16, 8, 8). Flux 2 patches 1×1 (its 128-channel latent is packed already).
LATENT = {"auraflow": (4, 8, 8), "qwen_image": (16, 1, 8, 8), "flux2": (128, 8, 8)}


def tiny_dit(family: str):
    from scripts import tiny_models
    return tiny_models.tiny_image_dit("sd3.5" if family.startswith("sd3.5") else family, seed=2)


@pytest.fixture(scope="module", params=FAMILIES)
def dit(request, comfy):
    if request.param == "flux2" and not hasattr(__import__("comfy.supported_models").supported_models, "Flux2"):
        pytest.skip("this ComfyUI predates Flux 2")
    return request.param, tiny_dit(request.param)


def conds(family: str, frames: int = 1):
    """Positive and negative conditioning of 7 prompt tokens (`frames` > 1: a different prompt per frame)."""
    dim, pooled = {"flux": (32, 32), "sd3": (64, 64), "sd3-registers": (64, 64), "chroma": (32, 768),
                   "auraflow": (32, None),
                   "qwen_image": (32, None), "flux2": (32, 32), "lumina2": (32, None), "z_image": (32, None),
                   "hidream": (32, 32)}.get(family, (4096, 64))

    def extra(s):
        out = {"guidance": 3.5}
        if pooled is not None:
            out["pooled_output"] = torch.randn(1, pooled, generator=gen(s + 5))
        if family == "hidream":  # the Llama hidden states, one per block (two blocks)
            out["conditioning_llama3"] = torch.randn(frames if s == 1 else 1, 2, 5, 32, generator=gen(s + 7))
        return out
    return ([[torch.randn(frames if s == 1 else 1, 7, dim, generator=gen(s)), extra(s)]] for s in (1, 2))


def image_tokens(family: str, h: int = 8, w: int = 8) -> int:
    """The image tokens of an h×w frame latent: 2×2 patches (Flux 2: 1×1), odd sides padded to whole patches;
    Z-Image pads the tokens to a multiple of 32."""
    p = 1 if family == "flux2" else 2
    n = math.ceil(h / p) * math.ceil(w / p)
    return n + (-n % 32 if family == "z_image" else 0)


def text_tokens(family: str, m) -> int:
    """The text tokens that lead a text-first family's joint attention: the 7 prompt tokens of conds() after
    SD3's or AuraFlow's register tokens; Flux 2 pads prompts to 512 tokens."""
    if family == "flux2":
        return 512
    dm = m.model.diffusion_model
    registers = getattr(dm, "register_tokens", None)
    return 7 + int(getattr(dm, "register_length", 0) or 0) + (0 if registers is None else registers.shape[1])


def image_span(family: str, m, total: int, site: int, h: int = 8, w: int = 8):
    """Where the image tokens of the `site`-th attention call (of `total` tokens, h×w latents) are, written from
    each family's model code: None for Lumina 2's / Z-Image's caption-only refiner layers (they run first)."""
    image = image_tokens(family, h, w)
    if family in ("lumina2", "z_image"):
        if site < len(m.model.diffusion_model.context_refiner):
            return None
        return total - image, total  # image-only refiner layers, then [caption, image]
    if family == "hidream":
        return 0, image  # [image, text] and [image, text, Llama layer]
    return (0, total) if total == image else (text_tokens(family, m), total)


def first_image_site(family: str, m) -> int:
    return len(m.model.diffusion_model.context_refiner) if family in ("lumina2", "z_image") else 0


def run(model, family, noise, cfg=2.0, steps=2, **kw):
    pos, neg = conds(family)
    return sample(model, noise, pos, neg, steps=steps, cfg=cfg, scheduler="simple", **kw)


def frames(family: str, n=3, seed=4, h=8, w=8):
    shape = LATENT.get(family, (16, 8, 8))
    return torch.randn(n, *shape[:-2], h, w, generator=gen(seed))


def test_input_model_is_not_modified(dit):
    family, m = dit
    before = (repr(m.model_options), dict(m.object_patches), len(m.patches), repr(m.wrappers))
    cross_frame(m)
    momentum(m, 0.9)
    assert (repr(m.model_options), dict(m.object_patches), len(m.patches), repr(m.wrappers)) == before


def test_identities_mu_one_mu_zero_and_patch_off(dit):
    """μ = 1 ≡ cross-frame attention to frame 0; μ = 0 ≡ unpatched; an empty sigma range ≡ unpatched (bit for
    bit); frame 0 (its own anchor) ≡ unpatched; the other frames change."""
    family, m = dit
    noise = frames(family)
    base = run(m, family, noise)
    cf = run(cross_frame(m), family, noise)
    assert torch.equal(run(momentum(m, 1.0), family, noise), cf)
    assert torch.equal(run(momentum(m, 0.0), family, noise), base)
    assert torch.equal(run(cross_frame(m, start=1.0, end=1.0), family, noise), base)
    assert torch.equal(cf[:1], base[:1])
    assert float((cf[1:] - base[1:]).abs().max()) > 1e-5 * float(base.abs().max())  # (float noise: ~1e-7)


def recorder(log: list, inner=None):
    """Another pack's attention override: records q, k, v, the output and the call's layout, changes nothing
    (hands the call to `inner`, an override it wraps, if given)."""
    def record(func, *args, **kwargs):
        out = inner(func, *args, **kwargs) if inner is not None else func(*args, **kwargs)
        opts = kwargs.get("transformer_options") or {}
        log.append({"q": args[0], "k": args[1], "v": args[2], "out": out,
                    "heads_first": bool(kwargs.get("skip_reshape")),
                    "heads": kwargs.get("heads", args[3] if len(args) > 3 else None),
                    "chunks": list(opts.get("cond_or_uncond") or [0]),
                    "call": dict(opts.get("zerovideo_dit_call") or {})})  # the patch's token counts, if patched
        return out
    return record


def with_recorder(m, log):
    r = m.clone()
    r.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = recorder(log)
    return r


def to_heads(t, rec):
    """(B, H, L, D) from either layout."""
    if rec["heads_first"]:
        return t
    if t.ndim == 4:  # (B, L, H, D): SD3's values
        return t.transpose(1, 2)
    b, n, c = t.shape
    h = rec["heads"]
    return t.view(b, n, h, c // h).transpose(1, 2)


def reference(rec, span: tuple[int, int], anchors: tuple[str, ...]) -> torch.Tensor:
    """Per frame, per chunk: softmax(q kᵀ/√d) v with the frame's own keys outside the image tokens `span` and the
    anchors' image keys."""
    a, b = span
    q, k, v = (to_heads(rec[n], rec).double() for n in ("q", "k", "v"))
    chunks = len(rec["chunks"])
    per = q.shape[0] // chunks
    out = torch.empty_like(q)
    for c in range(chunks):
        for f in range(per):
            i = c * per + f
            rows = [c * per + (0 if anc == "first" else max(f - 1, 0) if anc == "previous" else f)
                    for anc in anchors]
            keys = torch.cat([k[i, :, :a], k[i, :, b:]] + [k[r, :, a:b] for r in rows], dim=1)
            vals = torch.cat([v[i, :, :a], v[i, :, b:]] + [v[r, :, a:b] for r in rows], dim=1)
            w = torch.softmax(q[i] @ keys.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
            out[i] = w @ vals
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d)  # ComfyUI's attention returns (B, L, H·D)


@pytest.mark.parametrize("anchor,anchors", [("first", ("first",)), ("first+previous", ("first", "previous"))])
def test_the_first_block_matches_a_per_frame_reference_attention(dit, anchor, anchors):
    """The first attention with image tokens of the patched model (cond and uncond batched, 3 frames) equals the
    reference computed on the q/k/v the unpatched model gives it (nothing before it is patched; for Lumina 2 and
    Z-Image the caption-only refiner comes first and is left alone). The patched model reaches the reference
    through another pack's override, which it must hand over to."""
    from zerovideo.nodes import _dit
    family, m = dit
    plain, patched = [], []
    noise = frames(family)
    run(with_recorder(m, plain), family, noise, steps=1)
    run(cross_frame(with_recorder(m, patched), anchor=anchor), family, noise, steps=1)
    assert len(plain) == len(patched) > 0
    site = first_image_site(family, m)
    for i in range(site):  # the caption-only attentions before it are the unpatched ones
        assert torch.equal(plain[i]["k"], patched[i]["k"]) and torch.equal(plain[i]["out"], patched[i]["out"])
    p, q = plain[site], patched[site]
    assert p["chunks"] == q["chunks"] and len(p["chunks"]) == 2
    assert torch.equal(p["q"], q["q"])
    total = to_heads(p["k"], p).shape[2]
    span = image_span(family, m, total, site)
    expected = reference(p, span, anchors)
    got = q["out"].double()
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())
    # the image tokens are what the model computes for the latent
    assert span[1] - span[0] == image_tokens(family)
    assert to_heads(q["k"], q).shape[2] == total + image_tokens(family) * (len(anchors) - 1)
    assert _dit.family(m) == {"sd3.5 (MMDiT-X)": "sd3", "sd3-registers": "sd3", "flux2": "flux",
                              "z_image": "lumina2"}.get(family, family)


def image_tokens_are_the_anchors(family: str, m, h: int = 8, w: int = 8):
    """Cross-frame attention with a different prompt per frame, h×w latents: in every attention call, per chunk,
    each frame's image-token keys and values are frame 0's and every other token stays the frame's own. Returns
    the kinds of attention seen and the recorded calls."""
    log = []
    pos, neg = conds(family, frames=3)
    sample(cross_frame(with_recorder(m, log)), frames(family, h=h, w=w), pos, neg, steps=1, cfg=2.0,
           scheduler="simple")
    kinds = set()
    for site, rec in enumerate(log):
        k, v = to_heads(rec["k"], rec), to_heads(rec["v"], rec)
        total = k.shape[2]
        span = image_span(family, m, total, site, h, w)
        a, b = span if span is not None else (0, 0)
        assert b - a in (0, image_tokens(family, h, w)), (site, total, span)
        assert rec["call"]["image"] == image_tokens(family, h, w)  # what the patch counted for this latent
        kinds.add("text only" if span is None else "image only" if (a, b) == (0, total) else "joint")
        chunks = rec["chunks"]
        per = k.shape[0] // len(chunks)
        for c, kind in enumerate(chunks):
            rows = slice(c * per, (c + 1) * per)
            for t in (k[rows], v[rows]):
                assert torch.equal(t[:, :, a:b], t[:1, :, a:b].expand_as(t[:, :, a:b])), (site, a, b)
                if kind == 0 and (a, b) != (0, total):  # the cond chunk: one prompt per frame
                    rest = torch.cat((t[:, :, :a], t[:, :, b:]), dim=2)
                    assert all(not torch.equal(rest[f], rest[0]) for f in range(1, per)), (site, a, b)
    return kinds, log


def outside_recorder(m, log: list):
    """A recorder around the pack's override (set after it): it sees each attention's own q/k/v, before the patch
    changes anything, and the output after it."""
    r = m.clone()
    opts = r.model_options["transformer_options"] = dict(r.model_options["transformer_options"])
    opts["optimized_attention_override"] = recorder(log, inner=opts["optimized_attention_override"])
    return r


@pytest.mark.parametrize("anchor,anchors", [("first", ("first",)), ("first+previous", ("first", "previous"))])
def test_every_attention_call_matches_the_per_frame_reference(dit, anchor, anchors):
    """Every attention call of the patched model — each family's joint, image-only and caption-only attentions,
    one prompt per frame, odd latent sides — equals the per-frame reference on that call's own q/k/v with the
    image tokens where the family's code puts them (caption-only attentions: the frame's own keys alone)."""
    family, m = dit
    log = []
    pos, neg = conds(family, frames=3)
    sample(outside_recorder(cross_frame(m, anchor=anchor), log), frames(family, h=6, w=5), pos, neg, steps=1,
           cfg=2.0, scheduler="simple")
    assert log
    for site, rec in enumerate(log):
        span = image_span(family, m, to_heads(rec["k"], rec).shape[2], site, 6, 5)
        expected = reference(rec, span or (0, 0), anchors)
        got = rec["out"].double()
        assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max()), (site, span)


def test_every_attention_call_reads_the_anchors_image_keys_and_its_own_text(dit):
    """All joint attentions (Flux's and Chroma's double and single blocks, SD3's joint blocks, AuraFlow's double and
    single layers, Qwen-Image's blocks, Lumina 2's and Z-Image's layers, HiDream's double- and single-stream
    blocks) and the image-only ones (SD3.5's second attention, Lumina 2's / Z-Image's image refiner): in each chunk
    every frame's image-token keys and values are frame 0's, and every other token stays the frame's own — with a
    different prompt per frame, also in Lumina 2's / Z-Image's caption-only refiner."""
    family, m = dit
    kinds, log = image_tokens_are_the_anchors(family, m)
    dm = m.model.diffusion_model
    expected = {"flux": lambda: len(dm.double_blocks) + len(dm.single_blocks),
                "chroma": lambda: len(dm.double_blocks) + len(dm.single_blocks),
                "flux2": lambda: len(dm.double_blocks) + len(dm.single_blocks),
                "auraflow": lambda: len(dm.double_layers) + len(dm.single_layers),
                "qwen_image": lambda: len(dm.transformer_blocks),
                "lumina2": lambda: len(dm.context_refiner) + len(dm.noise_refiner) + len(dm.layers),
                "z_image": lambda: len(dm.context_refiner) + len(dm.noise_refiner) + len(dm.layers),
                "hidream": lambda: len(dm.double_stream_blocks) + len(dm.single_stream_blocks)}.get(
        family, lambda: len(dm.joint_blocks) + len(m.model.model_config.unet_config.get("x_block_self_attn_layers",
                                                                                        [])))
    assert len(log) == expected()
    assert kinds == ({"joint", "image only"} if family.startswith("sd3.5") else
                     {"text only", "image only", "joint"} if family in ("lumina2", "z_image") else {"joint"})


@pytest.mark.parametrize("h,w", [(9, 7), (6, 10)])
def test_odd_and_non_square_latents(dit, h, w):
    """Latents of odd and unequal sides (padded to whole patches; Z-Image also to 32 tokens): the image tokens are
    still exactly where each family puts them, in every attention call."""
    family, m = dit
    image_tokens_are_the_anchors(family, m, h, w)


def test_cond_and_uncond_never_mix(dit):
    """Batched cond+uncond, the split (low-memory) path and CFG 1 (cond alone) agree on the cond frames."""
    family, m = dit
    noise = frames(family)
    patched = cross_frame(m)
    batched = run(patched, family, noise)
    split = run(force_split_cond_uncond(cross_frame(m)), family, noise)
    assert_close_scaled(split, batched)
    log = []
    run(with_recorder(patched, log), family, noise, cfg=1.0, steps=1)
    assert log and all(r["chunks"] == [0] for r in log)


def test_a_single_step_sampler_keeps_frame_zero_the_single_image(dit, pack):
    """Text2Video-Zero Sampler on the DiT with cross-frame attention: frame 0 is the single image of the same
    noise (euler has no history across the sampler's passes)."""
    import comfy.sample
    import comfy.samplers
    from zerovideo.nodes import text2video_zero as t2vz
    family, m = dit
    pos, neg = conds(family)
    noise = comfy.sample.prepare_noise(torch.zeros(3, *LATENT.get(family, (16, 8, 8))), 9)
    sampler = t2vz.Text2VideoZeroSampler.execute(sampler=comfy.samplers.sampler_object("euler"), motion_x=4.0,
                                                 motion_y=0.0, zoom=1.0, rotation=0.0, t0=30, t1=40,
                                                 interpolation="nearest").args[0]
    sigmas = comfy.samplers.calculate_sigmas(m.get_model_object("model_sampling"), "simple", 10)
    video = comfy.sample.sample_custom(cross_frame(m), noise, 2.0, sampler, sigmas, pos, neg,
                                       torch.zeros_like(noise), seed=0, disable_pbar=True)
    single = comfy.sample.sample_custom(m, noise[:1], 2.0, comfy.samplers.sampler_object("euler"), sigmas, pos, neg,
                                        torch.zeros_like(noise[:1]), seed=0, disable_pbar=True)
    assert_close_scaled(video[:1], single)
    assert float((video[1:] - video[:1]).abs().max()) > 1e-3 * float(single.abs().max())


def test_under_context_windows_global_frame_zero_stays_the_anchor(dit):
    """Each frame depends only on itself and frame 0 (its text tokens are its own): windowed sampling equals the
    full batch, also for windows without frame 0 (its keys and values are kept apart per attention site)."""
    family, m = dit
    noise = frames(family, 8, 13)
    steps = 7  # ComfyUI 0.3.75's context handler needs frames == steps + 1 (see the U-Net test)
    full = run(cross_frame(m), family, noise, steps=steps)
    windowed = run(with_context_windows(cross_frame(m)), family, noise, steps=steps)
    assert_close_scaled(windowed, full)


@pytest.mark.parametrize("kind", ["cross-frame", "momentum"])
def test_several_videos_in_one_batch_read_only_their_own_frames(dit, kind):
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    from zerovideo.nodes.zs2 import TemporalMomentumAttention
    family, m = dit

    def patch(videos):
        if kind == "cross-frame":
            return CrossFrameAttentionPatch.execute(model=m, anchor="first+previous", start_percent=0.0,
                                                    end_percent=1.0, videos=videos).args[0]
        return TemporalMomentumAttention.execute(model=m, mu=0.9, anchor_mix=0.0, start_percent=0.0,
                                                 end_percent=1.0, videos=videos).args[0]
    noise = frames(family, 6, 21)
    each = torch.cat([run(patch(1), family, noise[:3]), run(patch(1), family, noise[3:])])
    assert_close_scaled(run(patch(2), family, noise), each)


def test_a_patch_outside_its_sigma_range_leaves_the_next_one_working(dit):
    """Stacked patches are independent: cross-frame attention with an empty sigma range, then momentum with μ = 1,
    equals momentum alone (≡ cross-frame attention)."""
    family, m = dit
    noise = frames(family)
    assert_close_scaled(run(momentum(cross_frame(m, start=1.0, end=1.0), 1.0), family, noise),
                        run(momentum(m, 1.0), family, noise))


def test_several_videos_with_context_windows_are_refused(comfy, pack):
    """A context window would mix the videos of one batch: refused by name, as on U-Nets."""
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    family, m = "flux", tiny_dit("flux")
    patched = CrossFrameAttentionPatch.execute(model=m, anchor="first", start_percent=0.0, end_percent=1.0,
                                               videos=2).args[0]
    with pytest.raises(ValueError, match=r"^Cross-Frame Attention: videos=2 does not work with context windows \(a "
                                         r"window would mix the videos\); sample the videos one at a time or set "
                                         r"videos to 1\.$"):
        run(with_context_windows(patched), family, frames(family, 8, 13), steps=7)


def test_momentum_stacks_after_cross_frame_as_on_u_nets(dit):
    """Patches apply in the order they were added: momentum over keys that cross-frame attention already made
    frame 0's everywhere is frame 0 again, so the stack equals cross-frame attention alone."""
    family, m = dit
    noise = frames(family)
    assert_close_scaled(run(momentum(cross_frame(m), 0.9), family, noise), run(cross_frame(m), family, noise))


def test_a_video_dit_is_refused_naming_it_and_the_supported_models(comfy, pack):
    from scripts import tiny_models
    wan = tiny_models.tiny_wan()
    for call in (lambda: cross_frame(wan), lambda: momentum(wan, 0.9)):
        with pytest.raises(ValueError, match=r"this model \(WanModel\) has no U-Net self-attention blocks to patch "
                                             r"and is not a supported DiT\. It works with SD1\.x, SD2\.x, SDXL and "
                                             r"SVD U-Nets, and Flux \(dev, schnell and their fine-tunes\), Flux 2, "
                                             r"Chroma, SD3/SD3\.5, AuraFlow, Qwen-Image, Lumina 2, Z-Image and "
                                             r"HiDream DiTs\."):
            call()


def test_hidream_edit_the_edited_image_joins_the_frames_image_tokens(comfy, pack):
    """HiDream E1 puts the image to edit beside the latent (along the width): its tokens are image tokens of the
    frame too — in every block the first tokens of the joined 8×(6+6) latent (24, not 12) are frame 0's."""
    family, m = "hidream", tiny_dit("hidream")
    edit = torch.randn(1, 16, 8, 6, generator=gen(31))
    pos, neg = ([[c, dict(d, concat_latent_image=edit)]] for [[c, d]] in conds(family, frames=3))
    log = []
    sample(cross_frame(with_recorder(m, log)), frames(family, h=8, w=6), pos, neg, steps=1, cfg=2.0,
           scheduler="simple")
    image = image_tokens(family, 8, 12)
    assert len(log) == 2
    for rec in log:
        k = to_heads(rec["k"], rec)
        assert k.shape[2] > image
        per = k.shape[0] // len(rec["chunks"])
        for c, kind in enumerate(rec["chunks"]):
            rows = k[c * per:(c + 1) * per]
            assert torch.equal(rows[:, :, :image], rows[:1, :, :image].expand_as(rows[:, :, :image]))
            if kind == 0:  # the cond chunk: each text token (one prompt per frame) stays the frame's own
                differs = (rows[1, :, image:] != rows[0, :, image:]).transpose(0, 1).flatten(1)  # (tokens, H·D)
                assert differs.any(1).all()


def test_an_attention_outside_a_patched_model_call_is_handed_over_untouched(comfy, pack):
    """ComfyUI calls the override for every attention whose transformer_options carry it, also outside the patched
    model's own call (no token counts there: another model sharing the options, a direct call): it hands such
    calls to the attention function unchanged."""
    from zerovideo.nodes import _dit
    m = cross_frame(tiny_dit("flux"))
    opts = dict(m.model_options["transformer_options"])  # the pack's patches, no per-call counts
    assert opts[_dit.PATCHES_KEY] and _dit.CALL_KEY not in opts
    q, k, v = (torch.randn(3, 10, 64, generator=gen(i)) for i in (1, 2, 3))
    seen = []

    def attention(*args, **kwargs):
        seen.append(args)
        return args[0]
    _dit.dispatch(attention, q, k, v, 2, transformer_options=opts)
    assert len(seen) == 1 and all(a is b for a, b in zip(seen[0], (q, k, v, 2)))


def test_two_anchor_modes_with_an_attention_mask_are_refused_one_anchor_works(comfy, pack):
    """An attention mask (here Flux's, from the conditioning: [text + image]² additive, zeros) is sized for the
    frame's own keys: one anchor keeps that size and works; two anchors double the image keys, which no mask of
    the model fits, so they are refused by name (not a shape error from inside torch)."""
    family, m = "flux", tiny_dit("flux")
    tokens = 7 + image_tokens(family)
    pos, neg = ([[c, dict(d, attention_mask=torch.zeros(1, tokens, tokens), attention_mask_img_shape=(4, 4))]]
                for [[c, d]] in conds(family))
    noise = frames(family)
    plain_pos, plain_neg = conds(family)
    one = sample(cross_frame(m), noise, pos, neg, steps=1, cfg=2.0, scheduler="simple")
    assert_close_scaled(one, sample(cross_frame(m), noise, plain_pos, plain_neg, steps=1, cfg=2.0, scheduler="simple"))
    pos, neg = ([[c, dict(d, attention_mask=torch.zeros(1, tokens, tokens), attention_mask_img_shape=(4, 4))]]
                for [[c, d]] in conds(family))
    with pytest.raises(ValueError, match=r"^Cross-Frame Attention: two-anchor modes \(first\+previous, first\+self\) "
                                         r"do not work with an attention mask on this model; use anchor 'first' or "
                                         r"'previous'\.$"):
        sample(cross_frame(m, anchor="first+previous"), noise, pos, neg, steps=1, cfg=2.0, scheduler="simple")


def test_a_lumina_call_with_reference_images_is_refused(comfy, pack):
    """Newer ComfyUI releases hand NextDiT (Z-Image Omni, Ming-Image) reference images that join its sequence: a
    layout the patches do not know, refused with a message rather than patched wrongly. The call goes through
    ComfyUI's own apply_model and its wrapper executor, as a sampler makes it."""
    m = cross_frame(tiny_dit("lumina2"))
    x = torch.randn(2, 16, 8, 8, generator=gen(3))
    opts = dict(m.model_options["transformer_options"], wrappers=m.wrappers)
    with pytest.raises(ValueError, match=r"^Cross-Frame / Temporal Momentum Attention: this NextDiT call carries "
                                         r"reference inputs \(ref_latents\), which these patches do not support; "
                                         r"sample without them\.$"):
        m.model.apply_model(x, torch.tensor([0.5, 0.5]), c_crossattn=torch.randn(2, 7, 32), transformer_options=opts,
                            ref_latents=[x[:1]])


@pytest.mark.parametrize("family", ["flux", "qwen_image"])
def test_reference_images_count_with_the_frames_image_tokens(comfy, pack, family):
    """Flux Kontext and Qwen-Image Edit append reference-image tokens after the frame's image tokens ([text,
    image, references]): every token after the text is frame 0's in each chunk, and the frame's text stays its
    own (one prompt per frame)."""
    m = tiny_dit(family)
    ref = torch.randn(1, *LATENT.get(family, (16, 8, 8)), generator=gen(33))
    pos, neg = ([[c, dict(d, reference_latents=[ref])]] for [[c, d]] in conds(family, frames=3))
    log = []
    sample(cross_frame(with_recorder(m, log)), frames(family), pos, neg, steps=1, cfg=2.0, scheduler="simple")
    text = text_tokens(family, m)
    assert log
    for rec in log:
        k = to_heads(rec["k"], rec)
        assert k.shape[2] == text + 2 * image_tokens(family)  # the frame's image tokens, then the reference's
        per = k.shape[0] // len(rec["chunks"])
        for c, kind in enumerate(rec["chunks"]):
            rows = k[c * per:(c + 1) * per]
            assert torch.equal(rows[:, :, text:], rows[:1, :, text:].expand_as(rows[:, :, text:]))
            if kind == 0:
                assert not torch.equal(rows[1, :, :text], rows[0, :, :text])
