"""ExVideo's temporal block, patched into ComfyUI's SVD U-Net, against an independent forward written from the
paper / DiffSynth-Studio description (ALGORITHMS.md §4.1), reading the extension file's own DiffSynth-named
tensors: learned position table → position MLP, added per frame; a 3×3×3 Conv3d with reflect padding per video
on (1, C, T, H, W); then the temporal transformer (norm_in → GEGLU ff_in (residual) → self-attention over
frames → cross-attention to the first frame's context → GEGLU ff). Plain torch; nothing of the pack or of
ComfyUI's attention code."""
import pytest
import torch
import torch.nn.functional as F
from zv_testing import gen, sample, svd_conds

FRAMES, H, W = 5, 8, 16  # latent 8×16: every level has H ≠ W (a swapped H/W in the Conv3d input shows)
BLOCKS = {7: "input_blocks.1.1", 51: "input_blocks.7.1", 154: "output_blocks.7.1"}  # 8×16, 2×4, 4×8


def layer_norm(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-5)


def linear(x, sd, name, bias=True):
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias") if bias else None)


def geglu(x, sd, name):
    h, gate = linear(x, sd, name).chunk(2, dim=-1)
    return h * F.gelu(gate)


def attention(x, context, sd, name, heads):
    q = linear(x, sd, f"{name}.to_q", bias=False)
    k = linear(context, sd, f"{name}.to_k", bias=False)
    v = linear(context, sd, f"{name}.to_v", bias=False)
    b, n, c = q.shape
    d = c // heads
    split = lambda t: t.reshape(b, t.shape[1], heads, d).transpose(1, 2)  # noqa: E731
    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / d ** 0.5, dim=-1)
    out = (weights @ split(v)).transpose(1, 2).reshape(b, n, c)
    return linear(out, sd, f"{name}.to_out")


def exvideo_temporal(x, context, sd, frames, h, w, heads):
    """x: the spatial block's output `(videos·T, h·w, C)`; context: `(videos·h·w, 1, D)`. Returns the temporal
    transformer's output `(videos·h·w, T, C)`."""
    videos, c = x.shape[0] // frames, x.shape[-1]
    pos = sd["positional_embedding.embeddings"][:frames]
    pos = linear(F.silu(linear(pos, sd, "positional_embedding_proj.0")), sd, "positional_embedding_proj.2")
    hs = x.reshape(videos, frames, h * w, c) + pos[None, :, None, :]
    conv = torch.nn.Conv3d(c, c, 3, padding=1, padding_mode="reflect")
    with torch.no_grad():
        conv.weight.copy_(sd["positional_conv.weight"])
        conv.bias.copy_(sd["positional_conv.bias"])
        vol = hs.reshape(videos, frames, h, w, c).permute(0, 4, 1, 2, 3)  # (videos, C, T, H, W)
        vol = conv(vol)
    z = vol.permute(0, 3, 4, 2, 1).reshape(videos * h * w, frames, c)  # (H W) T C per video
    z = linear(geglu(layer_norm(z, sd, "norm_in"), sd, "act_fn_in.proj"), sd, "ff_in") + z
    z = attention(layer_norm(z, sd, "norm1"), layer_norm(z, sd, "norm1"), sd, "attn1", heads) + z
    z = attention(layer_norm(z, sd, "norm2"), context, sd, "attn2", heads) + z
    return linear(geglu(layer_norm(z, sd, "norm_out"), sd, "act_fn_out.proj"), sd, "ff_out") + z


@pytest.fixture(scope="module")
def svd(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_svd(seed=8)


def test_patched_temporal_block_equals_the_independent_forward(pack, svd):
    from scripts import tiny_models
    from zerovideo.nodes import exvideo
    sd = tiny_models.exvideo_extension(svd, 32, seed=3, perturb=0.05)  # trained-looking conv and weights
    g = gen(4)
    for n in BLOCKS:  # a learned table, not the sinusoid it starts from
        table = sd[f"blocks.{n}.positional_embedding.embeddings"]
        sd[f"blocks.{n}.positional_embedding.embeddings"] = table + torch.randn(table.shape, generator=g)
    model = exvideo.apply_extension(svd, sd)
    dm = svd.model.diffusion_model
    seen = {n: {} for n in BLOCKS}
    hooks = []
    for n, path in BLOCKS.items():
        block = dm.get_submodule(path)

        def spatial(mod, args, out, n=n):
            seen[n].setdefault("x", out.detach().clone())

        def temporal(mod, args, kwargs, out, n=n):
            seen[n].setdefault("context", kwargs["context"].detach().clone())
            seen[n].setdefault("out", out.detach().clone())
        hooks.append(block.transformer_blocks[0].register_forward_hook(spatial))
        hooks.append(block.time_stack[0].register_forward_hook(temporal, with_kwargs=True))
    try:
        pos, neg = svd_conds(svd, H, W)
        out = sample(model, torch.randn(FRAMES, 4, H, W, generator=gen(5)), pos, neg, steps=1)
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.isfinite(out).all()
    for n, path in BLOCKS.items():
        block = dm.get_submodule(path)
        x, context, got = seen[n]["x"], seen[n]["context"], seen[n]["out"]
        h, w = {0: (H, W), 1: (H // 2, W // 2), 2: (H // 4, W // 4)}[{"input_blocks.1.1": 0, "input_blocks.7.1": 2,
                                                                      "output_blocks.7.1": 1}[path]]
        assert x.shape[1] == h * w, (path, x.shape)
        mine = {k.split(".", 2)[2]: v.float() for k, v in sd.items() if k.startswith(f"blocks.{n}.")}
        want = exvideo_temporal(x.float(), context.float(), mine, FRAMES, h, w, block.time_stack[0].attn1.heads)
        scale = max(1.0, float(want.abs().max()))
        assert float((got - want).abs().max()) <= 1e-5 * scale, path
