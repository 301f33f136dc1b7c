"""kernels/exvideo.py: the released key layout, ping-pong ids, positions, conv, renorm."""
import math

import pytest
import torch

from zerovideo.kernels import exvideo as X


def test_keymap_covers_528_tensors_of_16_blocks():
    km = X.exvideo_keymap()
    assert len(km) == 528 and len(X.BLOCK_MAP) == 16
    new = [k for k, v in km.items() if v is None]
    assert len(new) == 48  # table + conv weight + conv bias per block
    assert km["blocks.7.attn1.to_out.weight"] == "diffusion_model.input_blocks.1.1.time_stack.0.attn1.to_out.0.weight"
    assert km["blocks.83.positional_embedding_proj.2.bias"] == "diffusion_model.middle_block.1.time_pos_embed.2.bias"
    assert km["blocks.195.norm_out.weight"] == "diffusion_model.output_blocks.11.1.time_stack.0.norm3.weight"
    assert km["blocks.144.act_fn_in.proj.weight"] == \
        "diffusion_model.output_blocks.6.1.time_stack.0.ff_in.net.0.proj.weight"
    assert len(set(v for v in km.values() if v)) == 480


def test_pingpong_ids_match_the_published_sequence():
    ids = X.pingpong_ids(128).long().tolist()
    assert ids[:25] == list(range(25))
    assert ids[25:45] == list(range(23, 3, -1))
    assert ids[45:65] == list(range(5, 25))
    assert ids[65:85] == list(range(23, 3, -1))
    assert min(ids[25:]) == 4 and max(ids) == 24


def test_interpolated_positions_stay_inside_the_training_range():
    assert torch.equal(X.interpolated_positions(20), torch.arange(20.0))
    pos = X.interpolated_positions(100)
    assert pos[0] == 0 and pos[-1] < 25 and torch.allclose(pos[1] - pos[0], torch.tensor(0.25))


def test_sinusoid_matches_comfyui_timestep_embedding_layout():
    pos = torch.arange(5.0)
    emb = X.sinusoid(pos, 8)
    half = 4
    freqs = [math.exp(-math.log(10000) * i / half) for i in range(half)]
    want = [[math.cos(p * f) for f in freqs] + [math.sin(p * f) for f in freqs] for p in range(5)]
    torch.testing.assert_close(emb, torch.tensor(want), rtol=0, atol=1e-6)


def test_identity_conv_is_the_identity_and_a_real_conv_mixes_neighbours():
    videos, h, w, t, c = 2, 3, 4, 5, 6
    x = torch.randn(videos * h * w, t, c)
    out = X.positional_conv(x, X.identity_conv_weight(c), torch.zeros(c), videos, h, w)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)
    wt = torch.zeros(c, c, 3, 3, 3)
    wt[:, :, 0, 1, 1] = torch.eye(c)  # output frame k = input frame k-1 (reflect: frame -1 = frame 1)
    shifted = X.positional_conv(x, wt, None, videos, h, w).view(videos, h, w, t, c)
    xv = x.view(videos, h, w, t, c)
    torch.testing.assert_close(shifted[:, :, :, 1:], xv[:, :, :, :-1])
    torch.testing.assert_close(shifted[:, :, :, 0], xv[:, :, :, 1])


def test_renorm_sets_every_frame_to_the_global_statistics_times_contrast():
    x = torch.randn(6, 4, 8, 8) * torch.linspace(0.5, 2, 6).view(6, 1, 1, 1) + torch.arange(6.0).view(6, 1, 1, 1)
    out = X.renorm_latents(x, contrast=1.0)
    for f in range(6):
        assert float(out[f].mean()) == pytest.approx(float(x.mean()), abs=1e-4)
        assert float(out[f].std()) == pytest.approx(float(x.std()), rel=1e-4)
    torch.testing.assert_close(X.renorm_latents(x, 1.2), out * 1.2)


def test_split_extension_sorts_weights_new_tensors_and_unknown_keys():
    sd = {"blocks.7.positional_embedding.embeddings": torch.zeros(128, 320),
          "blocks.7.positional_conv.bias": torch.zeros(320),
          "blocks.7.attn2.to_k.weight": torch.zeros(320, 1024),
          "something.else": torch.zeros(1)}
    weights, new, unmatched = X.split_extension(sd)
    assert list(weights) == ["diffusion_model.input_blocks.1.1.time_stack.0.attn2.to_k.weight"]
    assert set(new["input_blocks.1.1"]) == {"table", "conv_bias"}
    assert unmatched == ["something.else"]
    assert X.detect_frames(sd) is None and X.detect_frames({X.DETECT_KEY: torch.zeros(128, 320)}) == 128


def test_sample_rows_takes_whole_rows_and_interpolates_between_them():
    table = torch.randn(5, 3)
    assert torch.equal(X.sample_rows(table, torch.tensor([0.0, 4.0, 2.0])), table[[0, 4, 2]])
    torch.testing.assert_close(X.sample_rows(table, torch.tensor([1.25])),
                               table[1:2] + 0.25 * (table[2:3] - table[1:2]))
    torch.testing.assert_close(X.sample_rows(table, torch.tensor([4.5])), table[4:5])  # the last row is held
    ids = X.pingpong_ids(30)
    torch.testing.assert_close(X.sample_rows(ids, torch.tensor([24.5, 25.0])), torch.stack([(ids[24] + ids[25]) / 2,
                                                                                            ids[25]]))


@pytest.mark.parametrize("videos,t,h,w", [(2, 5, 3, 4), (1, 3, 4, 2)])
def test_positional_conv_equals_a_reflect_padded_conv3d_per_video(videos, t, h, w):
    """Against torch's own Conv3d(padding_mode="reflect") on (1, C, T, H, W) per video, H ≠ W, random weights:
    a layout mistake (H and W swapped, frames and pixels mixed up) moves the neighbours and fails here."""
    c = 3
    g = torch.Generator().manual_seed(5)
    x = torch.randn(videos * h * w, t, c, generator=g)  # temporal-block layout (videos·h·w, T, C)
    conv = torch.nn.Conv3d(c, c, 3, padding=1, padding_mode="reflect")
    with torch.no_grad():
        conv.weight.copy_(torch.randn(c, c, 3, 3, 3, generator=g))
        conv.bias.copy_(torch.randn(c, generator=g))
        want = torch.cat([conv(x.view(videos, h, w, t, c)[v].permute(3, 2, 0, 1)[None]) for v in range(videos)])
    want = want.permute(0, 3, 4, 2, 1).reshape(videos * h * w, t, c)  # (videos, C, T, H, W) -> layout
    got = X.positional_conv(x, conv.weight.detach(), conv.bias.detach(), videos, h, w)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# DiffSynth-Studio's SVDUNet (diffsynth/models/svd_unet.py) is one flat list of blocks, and the released file
# names each tensor by its index in that list. The list, transcribed as module kinds: R ResnetBlock, T
# TemporalResnetBlock, A AttentionBlock, X TemporalAttentionBlock (what ExVideo retrains), M PopMixBlock,
# P PushBlock, O PopBlock, D DownSampler, U UpSampler.
_DOWN_RES, _DOWN_ATTN = "R P T M P", "A P X M P"
_UP_RES, _UP_ATTN = "O R P T M P", "A P X M"
DIFFSYNTH_LAYOUT = " ".join([
    *(2 * [_DOWN_RES + " " + _DOWN_ATTN] + ["D P"]) * 3,  # three CrossAttnDownBlockSpatioTemporal
    *2 * [_DOWN_RES],  # DownBlockSpatioTemporal
    _DOWN_RES, _DOWN_ATTN.rsplit(" ", 1)[0], "R P T M",  # UNetMidBlockSpatioTemporal (res, attn, res)
    *3 * ["O R P T M"], "U",  # UpBlockSpatioTemporal
    *([_UP_RES + " " + _UP_ATTN] * 3 + ["U"]) * 2,  # two CrossAttnUpBlockSpatioTemporal with upsampler
    *[_UP_RES + " " + _UP_ATTN] * 3,  # the last one, without
]).split()
# ComfyUI's SVD U-Net: the SpatialVideoTransformer of each of those blocks, in the order they run
COMFY_TRANSFORMERS = ["input_blocks.1.1", "input_blocks.2.1", "input_blocks.4.1", "input_blocks.5.1",
                      "input_blocks.7.1", "input_blocks.8.1", "middle_block.1", *(f"output_blocks.{i}.1" for i in
                                                                                 range(3, 12))]
# the tensors of DiffSynth's TemporalAttentionBlock (with ExVideo's table and conv), by module: Linear layers
# have weight and bias, LayerNorms too, GEGLU a `proj` Linear, Attention bias-free to_q/to_k/to_v and a biased
# to_out
DIFFSYNTH_BLOCK_TENSORS = {
    "positional_embedding.embeddings", "positional_conv.weight", "positional_conv.bias",
    *(f"{m}.{p}" for m in ("positional_embedding_proj.0", "positional_embedding_proj.2", "norm_in",
                           "act_fn_in.proj", "ff_in", "norm1", "norm2", "norm_out", "act_fn_out.proj", "ff_out")
      for p in ("weight", "bias")),
    *(f"{a}.{p}.weight" for a in ("attn1", "attn2") for p in ("to_q", "to_k", "to_v", "to_out")),
    "attn1.to_out.bias", "attn2.to_out.bias",
}


def test_block_numbers_are_the_temporal_attention_blocks_of_diffsynths_layout_in_forward_order():
    assert len(DIFFSYNTH_LAYOUT) == 197 and DIFFSYNTH_LAYOUT.count("X") == 16
    numbers = [i for i, kind in enumerate(DIFFSYNTH_LAYOUT) if kind == "X"]
    assert dict(zip(numbers, COMFY_TRANSFORMERS)) == X.BLOCK_MAP
    assert X.DETECT_KEY == f"blocks.{numbers[-2]}.positional_embedding.embeddings"


def test_every_tensor_of_a_diffsynth_temporal_block_is_mapped_and_only_they():
    assert set(X.block_keys()) == DIFFSYNTH_BLOCK_TENSORS
    new = {k for k, v in X.block_keys().items() if v is None}
    assert new == {"positional_embedding.embeddings", "positional_conv.weight", "positional_conv.bias"}


def diffsynth_position_id(frame: int, max_id: int = 25, repeat_length: int = 20) -> int:
    """DiffSynth-Studio's PositionalID (diffsynth/models/svd_unet.py), the ids ExVideo's table was trained on,
    transcribed from its description: 0..24, then down 23..4 and up 5..24, repeating."""
    if frame < max_id:
        return frame
    p = (frame - max_id) % (2 * repeat_length)
    return max_id - 2 - p if p < repeat_length else max_id - 2 * repeat_length + p


@pytest.mark.parametrize("frames", [1, 14, 25, 26, 64, 128, 200])
def test_pingpong_ids_are_diffsynths_position_ids_one_per_frame(frames):
    assert X.pingpong_ids(frames).long().tolist() == [diffsynth_position_id(f) for f in range(frames)]


def _reflect_or_repeat(i: int, n: int) -> int:
    """Index i of a length-n axis padded by one on each side: reflected (−1 → 1, n → n−2); a length-1 axis repeats
    its one entry."""
    if n == 1:
        return 0
    return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)


@pytest.mark.parametrize("t,h,w", [(3, 1, 2), (2, 2, 1), (1, 3, 2), (4, 2, 2), (2, 1, 1)])
def test_positional_conv_on_short_axes_against_a_sum_written_out(t, h, w):
    """Axes of length 1 and 2 (the deepest U-Net levels of small latents, short clips): each output is the 3×3×3
    weighted sum of its neighbours, reflected at the borders, a length-1 axis repeating its entry."""
    c, videos = 2, 2
    g = torch.Generator().manual_seed(8)
    x = torch.randn(videos * h * w, t, c, generator=g, dtype=torch.float64)
    weight = torch.randn(c, c, 3, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    v = x.view(videos, h, w, t, c)
    want = torch.empty_like(v)
    for n in range(videos):
        for i in range(h):
            for j in range(w):
                for f in range(t):
                    acc = bias.clone()
                    for df in range(3):
                        for di in range(3):
                            for dj in range(3):
                                src = v[n, _reflect_or_repeat(i + di - 1, h), _reflect_or_repeat(j + dj - 1, w),
                                        _reflect_or_repeat(f + df - 1, t)]
                                acc = acc + weight[:, :, df, di, dj] @ src
                    want[n, i, j, f] = acc
    got = X.positional_conv(x, weight, bias, videos, h, w)
    torch.testing.assert_close(got, want.reshape(videos * h * w, t, c), rtol=1e-10, atol=1e-10)


def test_sample_rows_at_several_fractional_positions_and_past_the_end():
    table = torch.arange(15.0).view(5, 3) ** 2
    pos = torch.tensor([0.5, 1.25, 3.75])
    lo = pos.floor().long()
    want = table[lo] + (pos - lo)[:, None] * (table[lo + 1] - table[lo])
    torch.testing.assert_close(X.sample_rows(table, pos), want)
    # past the last row the last row is held, at whole and at fractional positions
    assert torch.equal(X.sample_rows(table, torch.tensor([4.0, 7.0])), table[[4, 4]])
    torch.testing.assert_close(X.sample_rows(table, torch.tensor([5.5])), table[4:5])


def test_sinusoid_with_an_odd_channel_count_pads_one_zero_channel():
    pos = torch.tensor([0.0, 1.0, 3.0])
    emb = X.sinusoid(pos, 7)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(3.0) / 3)
    want = torch.cat([torch.cos(pos[:, None] * freqs), torch.sin(pos[:, None] * freqs), torch.zeros(3, 1)], dim=1)
    torch.testing.assert_close(emb, want)


def test_split_extension_goes_on_after_an_unknown_key():
    sd = {"something.else": torch.zeros(1), "blocks.7.attn2.to_k.weight": torch.zeros(320, 1024),
          "blocks.7.positional_conv.bias": torch.zeros(320)}
    weights, new, unmatched = X.split_extension(sd)
    assert list(weights) == ["diffusion_model.input_blocks.1.1.time_stack.0.attn2.to_k.weight"]
    assert set(new["input_blocks.1.1"]) == {"conv_bias"} and unmatched == ["something.else"]


def test_renorm_defaults_to_exvideos_contrast_and_normalises_nearly_flat_frames():
    x = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(X.renorm_latents(x), X.renorm_latents(x, 1.2))  # ExVideo's 1.2
    # a frame with a tiny but real variation (std 1.5e-6) is still brought to the clip's contrast; only a flat
    # one (std below 1e-6) is held at the clip's mean
    x[1] = 1.0 + 1.5e-6 * torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(3)).sign()
    out = X.renorm_latents(x.double(), contrast=1.0)
    assert float(out[1].std()) == pytest.approx(float(x.double().std()), rel=1e-3)
    x[2] = 0.5
    out = X.renorm_latents(x.double(), contrast=1.0)
    assert torch.allclose(out[2], torch.full_like(out[2], float(x.double().mean())))
