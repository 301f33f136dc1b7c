"""Schema helpers shared by every ZeroVideo node."""
from __future__ import annotations

import dataclasses
import inspect

from comfy_api.latest import io

PREFIX = "ZeroVideo."
CATEGORY = "ZeroVideo"


def schema(node_id: str, *, search_aliases: list[str] = (), description: str = "", **kw) -> io.Schema:
    """`io.Schema` with our id prefix; search aliases go where this ComfyUI can use them.

    ComfyUI versions whose Schema has a `search_aliases` field get it; older ones (0.3.75, our test
    host) get the aliases appended to the description, which the node search also matches.
    """
    fields = {f.name for f in dataclasses.fields(io.Schema)}
    if search_aliases and "search_aliases" in fields:
        kw["search_aliases"] = list(search_aliases)
    elif search_aliases:
        description = f"{description}\n\nAlso known as: {', '.join(search_aliases)}."
    return io.Schema(node_id=PREFIX + node_id, description=description, **kw)


_INPUTS_HAVE_ADVANCED = "advanced" in inspect.signature(io.Input.__init__).parameters


def advanced(input_class):
    """`input_class` (e.g. `io.Float.Input`) whose inputs come out marked as advanced: the frontend folds them
    away from most users. `advanced(io.Float.Input)("t0", default=44, ...)`.

    Newer ComfyUI has an `advanced` field on every input; older ones (0.3.75, our test host) do not, and there
    the flag goes into the input's extra options, which such a frontend ignores and a newer one reads. Either
    way /object_info shows `"advanced": true` for the input."""
    def make(*args, **kwargs):
        inp = input_class(*args, **kwargs)
        if _INPUTS_HAVE_ADVANCED:
            inp.advanced = True
        elif isinstance(getattr(inp, "extra_dict", None), dict):
            inp.extra_dict["advanced"] = True
        return inp
    return make


def check_range(name: str, value, lo: float, hi: float):
    """validate_inputs helper: naming an input there disables ComfyUI's own min/max check for it."""
    if value is not None and not lo <= value <= hi:
        return f"{name} must be between {lo} and {hi}, got {value}"
    return True


def check_percent_range(start_percent, end_percent):
    for name, value in (("start_percent", start_percent), ("end_percent", end_percent)):
        ok = check_range(name, value, 0.0, 1.0)
        if ok is not True:
            return ok
    if start_percent is not None and end_percent is not None and start_percent > end_percent:
        return f"start_percent ({start_percent}) must not be greater than end_percent ({end_percent})"
    return True


def check_choice(name: str, value, options):
    """ComfyUI 0.3.x does not check V3 combo values against their options; we do."""
    if value is not None and value not in options:
        return f"{name} must be one of {', '.join(map(str, options))}; got {value!r}"
    return True


def first_error(*checks):
    """The first check result that is not True, else True (validate_inputs returns one message)."""
    return next((c for c in checks if c is not True), True)


def require_finite(node: str, name: str, tensor) -> None:
    """Refuse a tensor with NaN/inf values, naming the input and the frames that hold them.

    Values cannot be seen at validation time (linked inputs), so nodes call this in execute: a NaN latent
    would otherwise flow through warps, renorms and attention and come out as a black or garbled video.
    """
    bad = ~tensor.isfinite()
    if not bad.any():
        return
    where = ""
    if tensor.ndim >= 2:
        frames = bad.flatten(1).any(1).nonzero().flatten().tolist()
        shown = ", ".join(map(str, frames[:8])) + (", …" if len(frames) > 8 else "")
        where = f" in {len(frames)} of {tensor.shape[0]} frame(s) ({shown})"
    raise ValueError(f"{node}: {name} contains NaN or infinite values{where}. The node that produced it "
                     f"failed (e.g. a VAE or model in fp16 overflowing); fix that upstream, since going on "
                     f"would only give a black or garbled video.")


def attention_videos_input() -> io.Int.Input:
    """Several videos in one latent batch (as Dependency Noise's `videos` makes them) for the attention patches.
    Optional, so prompts saved before it existed keep validating."""
    return advanced(io.Int.Input)("videos", default=1, min=1, max=256, optional=True,
                        tooltip="Number of videos in the latent batch, one after the other (as in Dependency "
                                "Noise's videos): each video's frames read only their own video's frames. 1 = the "
                                "whole batch is one video.")
