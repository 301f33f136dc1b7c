"""Frame-aware keys/values on DiT image models (Flux 1 and 2, Chroma, SD3/SD3.5, AuraFlow, Qwen-Image, Lumina 2,
Z-Image, HiDream): the attention techniques beyond U-Nets.

A DiT has no separate self-attention: each block attends jointly over the text tokens and the image tokens of
one frame. The techniques change only what the *image tokens'* keys and values are; queries and text tokens
stay per frame. Every family gives every frame the same token grid (Flux, Chroma, Qwen-Image, Lumina 2, Z-Image,
HiDream: the same RoPE positions for every batch row, the captions of one call having one length; SD3, AuraFlow:
the same position embedding added before the blocks), so an anchor frame's keys, positions included, are valid
keys for any other frame.

Hooks (no class is monkey-patched; all on a cloned ModelPatcher):
- `transformer_options["optimized_attention_override"]` — ComfyUI calls it instead of the attention function
  (`comfy.ldm.modules.attention.wrap_attn`) with the function and its arguments: q, k, v after projection,
  QK-norm and (Flux) RoPE. One dispatcher per model runs the pack's patches in the order they were added, then
  hands over to an override that was there before (another pack's), or to the attention function.
- an APPLY_MODEL wrapper that tells the dispatcher, per model call, how many text tokens lead the sequence
  and how many image tokens the latent makes, and counts the attention calls (the site of each call).

Token layout per family ("text first" unless said): Flux (1 and 2) and Chroma double and single blocks attend
over [text, image (, reference images)]; SD3's joint blocks over [registers, text, image], and SD3.5's MMDiT-X
blocks also over [image] alone; AuraFlow's double and single layers over [registers, text, image]; Qwen-Image's
over [text, image (, references)]. Lumina 2 and Z-Image ("image last"): first caption-only refiner layers (left
alone), then image-only refiner layers, then joint layers over [caption, image]; Z-Image pads the caption and the
image tokens to multiples of 32 (the image's padding tokens belong to it). HiDream ("image first"): double-stream
blocks over [image, text], single-stream blocks over [image, text, Llama layer].
"""
from __future__ import annotations

import functools

import comfy.patcher_extension
import torch

from . import _patching

PATCHES_KEY = "zerovideo_dit_kv"  # transformer_options: the pack's DiT K/V patches, in order
INNER_KEY = "zerovideo_dit_inner_override"  # transformer_options: the override that was there before ours
CALL_KEY = "zerovideo_dit_call"  # transformer_options of one model call: token counts, attention-call counter
OVERRIDE = "optimized_attention_override"

SUPPORTED = ("Flux (dev, schnell and their fine-tunes), Flux 2, Chroma, SD3/SD3.5, AuraFlow, Qwen-Image, Lumina 2, "
             "Z-Image and HiDream")


@functools.cache
def _families() -> dict:
    """diffusion-model class -> family, for the DiTs whose token layouts are known (the exact classes: subclasses
    such as video or edit variants may lay them out otherwise)."""
    import comfy.ldm.aura.mmdit as aura
    import comfy.ldm.chroma.model as chroma
    import comfy.ldm.flux.model as flux
    import comfy.ldm.hidream.model as hidream
    import comfy.ldm.lumina.model as lumina
    import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
    import comfy.ldm.qwen_image.model as qwen
    return {flux.Flux: "flux", chroma.Chroma: "chroma", mmdit.OpenAISignatureMMDITWrapper: "sd3",
            aura.MMDiT: "auraflow", qwen.QwenImageTransformer2DModel: "qwen_image", lumina.NextDiT: "lumina2",
            hidream.HiDreamImageTransformer2DModel: "hidream"}


# where a family's image tokens sit in its attentions (see the module doc)
LAYOUTS = {"lumina2": "image last", "hidream": "image first"}


def family(model) -> str | None:
    """The family name of a DiT image model the K/V patches support, else None."""
    return _families().get(type(model.get_model_object("diffusion_model")))


def image_tokens(dm, height: int, width: int) -> int:
    """The image tokens a DiT (or a DiT ControlNet) `dm` makes of a height × width latent: its patch_size patches,
    odd sides padded to whole patches; Z-Image pads the tokens to a multiple of its pad_tokens_multiple."""
    p = dm.patch_size
    image = ((height + p - 1) // p) * ((width + p - 1) // p)
    pad = getattr(dm, "pad_tokens_multiple", None)
    if pad:
        image += -image % pad
    return image


def call_state(text: int, image: int, layout: str = "text first", skip: int = 0) -> dict:
    """The per-call entry the dispatcher reads at transformer_options[CALL_KEY]: `text` non-image tokens lead
    (or follow, per `layout`) the `image` tokens, the first `skip` attention sites are left alone, and a fresh
    attention-call counter."""
    return {"text": text, "image": image, "calls": 0, "layout": layout, "skip": skip}


def _token_counts(model, fam: str, x: torch.Tensor, context, kwargs: dict) -> tuple[int, int]:
    """(leading non-image tokens, image tokens of the latent) for one model call of a `fam` model."""
    dm = model.diffusion_model
    width = x.shape[-1]
    cond = kwargs.get("image_cond")  # HiDream E1: the edited image joins the latent along its width
    if cond is not None and fam == "hidream":
        width += cond.shape[-1]
    image = image_tokens(dm, x.shape[-2], width)
    text = 0 if context is None else int(context.shape[1])
    text += int(getattr(dm, "register_length", 0) or 0)  # SD3's register tokens lead the text
    registers = getattr(dm, "register_tokens", None)  # AuraFlow's likewise
    if registers is not None:
        text += int(registers.shape[1])
    return text, image


def _lumina_refusal(dm, kwargs: dict) -> None:
    """Newer ComfyUI releases give NextDiT reference images (Z-Image Omni, Ming-Image) in the same sequence: a
    layout these patches do not know."""
    for name in ("ref_latents", "siglip_feats", "ref_frames", "ref_contexts"):
        if kwargs.get(name):
            raise ValueError(f"Cross-Frame / Temporal Momentum Attention: this {type(dm).__name__} call carries "
                             f"reference inputs ({name}), which these patches do not support; sample without them.")


def _apply_model(executor, *args, **kwargs):
    """APPLY_MODEL wrapper: put this call's token counts and a fresh attention-call counter in a copy of its
    transformer_options."""
    x = args[0] if args else kwargs["x"]
    context = _patching.argument(executor, args, kwargs, "c_crossattn", None)
    opts = _patching.argument(executor, args, kwargs, "transformer_options", None) or {}
    model = executor.class_obj
    fam = _families().get(type(model.diffusion_model))
    text, image = _token_counts(model, fam, x, context, kwargs)
    skip = 0
    if fam == "lumina2":
        _lumina_refusal(model.diffusion_model, kwargs)
        skip = len(model.diffusion_model.context_refiner)  # the caption-only layers run first
    opts = dict(opts)
    opts[CALL_KEY] = call_state(text, image, LAYOUTS.get(fam, "text first"), skip)
    args, kwargs = _patching.with_argument(executor, args, kwargs, "transformer_options", opts)
    return executor(*args, **kwargs)


def dispatch(func, *args, **kwargs):
    """The attention override: the pack's K/V patches on the image tokens, then the attention itself."""
    opts = kwargs.get("transformer_options") or {}
    patches = opts.get(PATCHES_KEY) or ()
    inner = opts.get(INNER_KEY)
    call = opts.get(CALL_KEY)
    if patches and call is not None and len(args) >= 3:
        q, k, v = args[:3]
        site = call["calls"]
        call["calls"] = site + 1
        new_k, new_v = _frame_kv(patches, k, v, kwargs, opts, call, site)
        if new_k is not k or new_v is not v:
            if kwargs.get("mask") is not None and new_k.shape != k.shape:
                raise ValueError("Cross-Frame Attention: two-anchor modes (first+previous, first+self) do not work "
                                 "with an attention mask on this model; use anchor 'first' or 'previous'.")
            args = (q, new_k, new_v, *args[3:])
    if inner is not None:
        return inner(func, *args, **kwargs)
    return func(*args, **kwargs)


def _image_span(total: int, call: dict, site: int) -> tuple[int, int] | None:
    """[start, stop) of the image tokens in an attention over `total` tokens, None to leave it alone."""
    text, image, layout = call["text"], call["image"], call["layout"]
    if site < call["skip"] or total < image:
        return None
    if layout == "image first":  # [image, text, …]
        return 0, image
    if layout == "image last":  # [caption, image]
        return total - image, total
    if total == image:  # image tokens alone (SD3.5's second attention)
        return 0, total
    if total - text >= image:  # [text, image, (reference images)]
        return text, total
    return None  # an attention of another kind: left alone


def _frame_kv(patches, k, v, kwargs, opts, call, site):
    """New keys/values for one attention call, in the layout the call handed them over: (B, H, L, D) with
    skip_reshape, else (B, L, H·D) or (B, L, H, D) (SD3 hands its values over unflattened). The patches see the
    image tokens as a (B, L_image, …) view (batch first, tokens second; no copy)."""
    heads_first = bool(kwargs.get("skip_reshape", False))
    axis = 2 if heads_first else 1
    span = _image_span(k.shape[axis], call, site)
    if span is None:
        return k, v
    lead, stop = span
    chunks = len(opts.get("cond_or_uncond") or [0])
    if k.shape[0] % chunks:
        return k, v

    def tokens_second(t):
        return t.transpose(1, 2) if heads_first else t
    img_k, img_v = tokens_second(k)[:, lead:stop], tokens_second(v)[:, lead:stop]
    changed = False
    for patch in patches:
        if opts not in patch.sigmas:
            continue
        groups = _patching.video_groups(chunks, k.shape[0] // chunks, patch.videos, patch.node,
                                        opts.get("context_window") is not None)
        # a distinct site for keys and values: a patch that caches per site (the global first frame under
        # context windows) must not give values the keys it cached
        img_k = patch.kv(img_k, groups, dict(opts, block=("dit", site, "k"), block_index=0))
        img_v = patch.kv(img_v, groups, dict(opts, block=("dit", site, "v"), block_index=0))
        changed = True
    if not changed:
        return k, v
    lo, hi = (slice(None),) * axis + (slice(None, lead),), (slice(None),) * axis + (slice(stop, None),)
    new_k = torch.cat((k[lo], tokens_second(img_k), k[hi]), dim=axis)
    new_v = torch.cat((v[lo], tokens_second(img_v), v[hi]), dim=axis)
    return new_k, new_v


def patch_model(model, patch_cls, node: str, start_percent: float, end_percent: float, videos: int = 1, **kw):
    """Clone `model` (a supported DiT) and add a FrameKVPatch subclass to its DiT K/V patches."""
    m = model.clone()
    opts = m.model_options.setdefault("transformer_options", {})
    patch = patch_cls(sigmas=_patching.SigmaRange(m, start_percent, end_percent), video=False, videos=videos,
                      node=node, **kw)
    previous = opts.get(OVERRIDE)
    if previous is not dispatch:
        opts[INNER_KEY] = previous  # another pack's override: ours hands over to it
        opts[OVERRIDE] = dispatch
    opts[PATCHES_KEY] = [*opts.get(PATCHES_KEY, ()), patch]
    _patching.add_run_state(m)
    m.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, CALL_KEY)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, CALL_KEY, _apply_model)
    return m
