"""ExVideo on a tiny real SVD U-Net: key map coverage, exact identities, long sampling, bad files."""
import pytest
import torch
from zv_testing import gen, sample, svd_conds


@pytest.fixture(scope="module")
def svd(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_svd(seed=8)


@pytest.fixture(scope="module")
def ex(pack):
    from zerovideo.nodes import exvideo
    return exvideo


def extension(svd, frames=128, perturb=0.0, seed=0):
    from scripts import tiny_models
    return tiny_models.exvideo_extension(svd, frames, seed, perturb)


def loaded_state(m):
    """The model's weights with m's patches applied (what sampling sees), then restored.

    ComfyUI leaves a sampled model loaded with its patcher's weight patches in place; the clones of one model
    share the backups, so unpatching through any clone restores the stock weights first, whatever test ran
    before this one."""
    m.unpatch_model()
    m.patch_model()
    try:
        return {k: v.clone() for k, v in m.model.state_dict().items()}
    finally:
        m.unpatch_model()


def test_released_layout_loads_with_no_unmatched_or_missing_keys_and_sets_the_tensors(ex, svd):
    from zerovideo.kernels import exvideo as X
    sd = extension(svd, perturb=0.01, seed=1)
    weights, new, unmatched = X.split_extension(sd)
    assert unmatched == [] and len(weights) == 480 and all(len(t) == 3 for t in new.values())
    from scripts import tiny_models
    before = {k: v.clone() for k, v in tiny_models.stock_state_dict(svd).items()}
    m = ex.apply_extension(svd, sd)
    patched = loaded_state(m)
    for key, tensor in weights.items():
        torch.testing.assert_close(patched[key], tensor.to(patched[key].dtype), rtol=0, atol=0)
    after = svd.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the input model's weights changed"
    assert not svd.object_patches and not svd.patches


@pytest.mark.parametrize("frames", [8, 25])
def test_sinusoid_table_and_identity_conv_reproduce_the_stock_model_bit_for_bit(ex, svd, frames):
    pos, neg = svd_conds(svd, 4, 4)
    noise = torch.randn(frames, 4, 4, 4, generator=gen(2))
    stock = sample(svd, noise, pos, neg, steps=2, cfg=2.0)
    extended = sample(ex.apply_extension(svd, extension(svd)), noise, pos, neg, steps=2, cfg=2.0)
    assert torch.equal(stock, extended)


def test_a_trained_conv_and_table_change_the_result(ex, svd):
    pos, neg = svd_conds(svd, 4, 4)
    noise = torch.randn(8, 4, 4, 4, generator=gen(3))
    stock = sample(svd, noise, pos, neg, steps=1, cfg=2.0)
    changed = sample(ex.apply_extension(svd, extension(svd, perturb=0.05, seed=2)), noise, pos, neg, steps=1, cfg=2.0)
    assert torch.isfinite(changed).all() and (changed - stock).abs().max() > 1e-3


@pytest.mark.parametrize("frames", [32, 128])
def test_sampling_beyond_25_frames_works_up_to_the_table(ex, svd, frames):
    pos, neg = svd_conds(svd, 2, 2)
    out = sample(ex.apply_extension(svd, extension(svd, perturb=0.01)), torch.randn(frames, 4, 2, 2, generator=gen(4)),
                 pos, neg, steps=1, cfg=2.0)
    assert out.shape[0] == frames and torch.isfinite(out).all()


def test_more_frames_than_the_table_is_a_clear_error_before_sampling(ex, svd):
    pos, neg = svd_conds(svd, 2, 2)
    m = ex.apply_extension(svd, extension(svd, frames=16))
    with pytest.raises(ValueError, match="20 frames requested, but the extension's position table holds 16"):
        sample(m, torch.randn(20, 4, 2, 2), pos, neg, steps=1, cfg=2.0)


@pytest.mark.parametrize("mode", ["interpolate", "ping-pong"])
def test_training_free_modes_are_exact_below_25_frames_and_run_beyond(ex, svd, mode):
    pos, neg = svd_conds(svd, 2, 2)
    noise = torch.randn(12, 4, 2, 2, generator=gen(5))
    m = ex.ExVideoTemporalExtend.execute(model=svd, mode=mode, extension=ex.NO_FILE).args[0]
    torch.testing.assert_close(sample(m, noise, pos, neg, steps=1, cfg=2.0),
                               sample(svd, noise, pos, neg, steps=1, cfg=2.0), rtol=0, atol=1e-5)
    long = sample(m, torch.randn(40, 4, 2, 2, generator=gen(6)), pos, neg, steps=1, cfg=2.0)
    assert torch.isfinite(long).all()


def test_interpolate_mode_squeezes_the_frame_positions_into_svds_25(ex, svd):
    """Training-free `interpolate` on 40 frames: what the first layer of SVD's position MLP (time_pos_embed)
    receives in every temporal block is ComfyUI's own sinusoidal embedding of positions t·25/40 (t = 0…39), where
    the stock model embeds t."""
    from comfy.ldm.modules.diffusionmodules.util import timestep_embedding
    m = ex.ExVideoTemporalExtend.execute(model=svd, mode="interpolate", extension=ex.NO_FILE).args[0]
    seen = []
    hooks = [mod.register_forward_pre_hook(lambda mod, args: seen.append((mod, args[0].detach().clone())))
             for name, mod in m.model.diffusion_model.named_modules() if name.endswith("time_pos_embed.0")]
    try:
        pos, neg = svd_conds(svd, 2, 2)
        sample(m, torch.randn(40, 4, 2, 2, generator=gen(6)), pos, neg, steps=1, cfg=2.0)
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) >= len(hooks) > 0
    for mod, t_emb in seen:
        expected = timestep_embedding(torch.arange(40) * (25 / 40), t_emb.shape[-1], repeat_only=False,
                                      max_period=10000)
        assert t_emb.shape[0] % 40 == 0
        for video in t_emb.view(-1, 40, t_emb.shape[-1]):
            torch.testing.assert_close(video.float(), expected.float(), rtol=0, atol=1e-5)


def test_the_tables_own_limit_is_a_clear_error(ex, svd):
    """Where the node cannot check the frame count before sampling (under Hidden State Correction), the learned
    table refuses positions past its rows itself, in words."""
    extras = ex.ExVideoExtras({"block": {"table": torch.zeros(16, 8), "conv_weight": torch.zeros(1),
                                         "conv_bias": torch.zeros(1)}}, torch.float32)
    with pytest.raises(ValueError, match=r"^ExVideo: 20 frames requested, but the extension's position table holds "
                                         r"16\. Use at most 16 frames\.$"):
        ex._table_embed(extras, "block", 16, torch.arange(20.0), 20, 8)
    assert ex._table_embed(extras, "block", 16, torch.arange(16.0), 16, 8).shape == (16, 8)


def test_non_svd_models_are_refused(ex, comfy):
    from scripts import tiny_models
    with pytest.raises(ValueError, match="needs a Stable Video Diffusion model"):
        ex.ExVideoTemporalExtend.execute(model=tiny_models.tiny_sd15(), mode="interpolate", extension=ex.NO_FILE)


def test_a_table_for_another_channel_size_is_refused(ex, svd):
    from zerovideo.kernels import exvideo as X
    sd = extension(svd)
    sd["blocks.7." + X.TABLE] = torch.zeros(128, 999)
    with pytest.raises(ValueError, match="for 999 channels, but this model's block has 64"):
        ex.apply_extension(svd, sd, "bad.safetensors")


def test_files_are_read_with_safetensors_only_and_bad_files_are_named(ex, tmp_path, monkeypatch):
    import folder_paths
    import safetensors.torch
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "exvideo", ([str(tmp_path)], {".safetensors", ".ckpt"}))
    torch.save({"x": torch.zeros(1)}, tmp_path / "evil.ckpt")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    safetensors.torch.save_file({"unet.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a .safetensors file"):
        ex.load_extension("evil.ckpt")
    with pytest.raises(ValueError, match="could not be read as safetensors"):
        ex.load_extension("cut.safetensors")
    with pytest.raises(ValueError, match="not an ExVideo extension file"):
        ex.load_extension("other.safetensors")
    with pytest.raises(ValueError, match="not found"):
        ex.load_extension("missing.safetensors")


def test_latent_renorm_node(ex):
    x = torch.randn(4, 4, 8, 8) + torch.arange(4.0).view(4, 1, 1, 1)
    out = ex.ExVideoLatentRenorm.execute(latent={"samples": x}, contrast=1.2).args[0]["samples"]
    assert out.shape == x.shape and abs(float(out[0].mean() - out[3].mean())) < 1e-4
    with pytest.raises(ValueError, match="at least 2 frames"):
        ex.ExVideoLatentRenorm.execute(latent={"samples": x[:1]}, contrast=1.2)


def test_the_fps_output_is_exvideos_frame_rate_in_every_mode(ex, svd, tmp_path, monkeypatch):
    import folder_paths
    import safetensors.torch
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "exvideo", ([str(tmp_path)], {".safetensors"}))
    safetensors.torch.save_file(extension(svd, frames=32), tmp_path / "ext.safetensors")
    for mode, file in (("weights", "ext.safetensors"), ("interpolate", ex.NO_FILE), ("ping-pong", ex.NO_FILE)):
        # the frame rate ExVideo's clips are made at (ALGORITHMS.md, ExVideo inference defaults: fps 30)
        assert ex.ExVideoTemporalExtend.execute(model=svd, mode=mode, extension=file).args[1] == 30.0, mode


def diffsynth_shape(name: str, c: int, ctx: int) -> tuple:
    """Shape of a tensor of DiffSynth's TemporalAttentionBlock with `c` channels and cross-attention width `ctx`
    (diffsynth/models/svd_unet.py): the position MLP c → 4c → c, LayerNorms, GEGLU c → 2·4c, Linear 4c → c,
    attention projections c → c (keys/values of attn2 from the context)."""
    module, leaf = name.rsplit(".", 1)
    if module.startswith("norm"):
        return (c,)
    rows, cols = {"positional_embedding_proj.0": (4 * c, c), "positional_embedding_proj.2": (c, 4 * c),
                  "act_fn_in.proj": (8 * c, c), "act_fn_out.proj": (8 * c, c), "ff_in": (c, 4 * c),
                  "ff_out": (c, 4 * c), "attn2.to_k": (c, ctx), "attn2.to_v": (c, ctx)}.get(module, (c, c))
    return (rows, cols) if leaf == "weight" else (rows,)


def test_the_keymap_lands_on_every_temporal_tensor_of_comfyuis_svd_unet_with_diffsynths_shapes(svd):
    from zerovideo.kernels import exvideo as X
    sd = svd.model.state_dict()
    km = X.exvideo_keymap()
    temporal = {k for k in sd for p in X.BLOCK_MAP.values()
                if k.startswith((f"diffusion_model.{p}.time_stack.", f"diffusion_model.{p}.time_pos_embed."))}
    assert {v for v in km.values() if v} == temporal  # all of them, and nothing else
    for n, path in X.BLOCK_MAP.items():
        c = sd[f"diffusion_model.{path}.time_stack.0.norm1.weight"].shape[0]
        ctx = sd[f"diffusion_model.{path}.time_stack.0.attn2.to_k.weight"].shape[1]
        for src, dst in X.block_keys().items():
            if dst is not None:
                assert tuple(sd[km[f"blocks.{n}.{src}"]].shape) == diffsynth_shape(src, c, ctx), (n, src)
