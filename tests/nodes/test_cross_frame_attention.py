"""CrossFrameAttentionPatch on tiny real ComfyUI U-Nets, through ComfyUI's own samplers."""
import pytest
import torch
from zv_testing import (assert_close_scaled, force_split_cond_uncond, gen, record_chunks, sample,
                        sd15_conds, svd_conds, with_context_windows, with_reference)


@pytest.fixture(scope="module")
def sd15(comfy):
    from scripts import tiny_models
    return tiny_models.tiny_sd15(seed=3)


@pytest.fixture(scope="module")
def node(pack):
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    return CrossFrameAttentionPatch


def patched(node, model, anchor="first", start=0.0, end=1.0):
    return node.execute(model=model, anchor=anchor, start_percent=start, end_percent=end).args[0]


def test_input_model_is_not_modified(node, sd15):
    before = (dict(sd15.model_options["transformer_options"]), dict(sd15.object_patches), len(sd15.patches))
    m = patched(node, sd15)
    assert m is not sd15 and m.model is sd15.model
    assert (dict(sd15.model_options["transformer_options"]), dict(sd15.object_patches), len(sd15.patches)) == before
    assert "attn1_patch" in m.model_options["transformer_options"]["patches"]


def test_first_anchor_with_one_frame_is_bit_identical_to_the_unpatched_model(node, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(1, 4, 8, 8, generator=gen(0))
    assert torch.equal(sample(patched(node, sd15), noise, pos, neg), sample(sd15, noise, pos, neg))


def test_patch_disabled_by_sigma_range_is_bit_identical_to_unpatched(node, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(4, 4, 8, 8, generator=gen(0))
    off = patched(node, sd15, start=1.0, end=1.0)
    assert torch.equal(sample(off, noise, pos, neg), sample(sd15, noise, pos, neg))
    assert not torch.equal(sample(patched(node, sd15), noise, pos, neg), sample(sd15, noise, pos, neg))


@pytest.mark.parametrize("split", [False, True], ids=["cond+uncond together", "cond and uncond split"])
def test_matches_an_explicit_per_frame_attention_to_the_anchor(node, sd15, split):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(4, 4, 8, 8, generator=gen(5))
    ours, ref = patched(node, sd15), with_reference(sd15)
    seen = []
    if split:
        ours, ref = force_split_cond_uncond(ours), force_split_cond_uncond(ref)
    record_chunks(ours, seen)
    a, b = sample(ours, noise, pos, neg, steps=2), sample(ref, noise, pos, neg, steps=2)
    assert set(seen) == ({(0,), (1,)} if split else {(1, 0)})
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_with_cfg_one_only_the_cond_chunk_runs_and_is_still_correct(node, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(3, 4, 8, 8, generator=gen(6))
    seen = []
    ours = record_chunks(patched(node, sd15), seen)
    a = sample(ours, noise, pos, neg, steps=2, cfg=1.0)
    b = sample(with_reference(sd15), noise, pos, neg, steps=2, cfg=1.0)
    assert set(seen) == {(0,)}
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_frame_zero_equals_the_single_image_with_the_same_noise(node, sd15):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(4, 4, 8, 8, generator=gen(7))
    video = sample(patched(node, sd15), noise, pos, neg, sampler="ddim", scheduler="ddim_uniform")
    single = sample(sd15, noise[:1], pos, neg, sampler="ddim", scheduler="ddim_uniform")
    assert_close_scaled(video[:1], single)
    assert (video[1:] - single).abs().max() > 1e-3  # the other frames did change


@pytest.mark.parametrize("anchor", ["previous", "first+previous", "first+self"])
def test_other_anchor_modes_run_finite_and_keep_frame_zero_for_causal_modes(node, sd15, anchor):
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(3, 4, 8, 8, generator=gen(8))
    out = sample(patched(node, sd15, anchor), noise, pos, neg, steps=2)
    assert torch.isfinite(out).all()
    if anchor != "first+self":  # frame 0 reads only itself (duplicated keys do not change softmax)
        single = sample(sd15, noise[:1], pos, neg, steps=2)
        assert_close_scaled(out[:1], single)


@pytest.mark.parametrize("frames,size", [(3, 8), (4, 8)], ids=["F!=h*w", "F==h*w at the 2x2 level"])
def test_on_svd_only_spatial_calls_are_patched(node, comfy, frames, size):
    from scripts import tiny_models
    svd = tiny_models.tiny_svd(seed=2)
    m = patched(node, svd)
    kinds = []
    patch = m.model_options["transformer_options"]["patches"]["attn1_patch"][0]
    orig = patch.__call__

    def spy(n, c, v, extra):
        from zerovideo.nodes import _patching
        calls = dict(extra.get(_patching.CALLS_KEY))  # counter before this call
        key = (id(patch), tuple(extra["block"]), extra["block_index"])
        kinds.append(("temporal" if calls.get(key, 0) % 2 else "spatial", tuple(n.shape)))
        return orig(n, c, v, extra)
    m.model_options["transformer_options"]["patches"]["attn1_patch"] = [spy]
    pos, neg = svd_conds(svd, size, size)
    out = sample(m, torch.randn(frames, 4, size, size, generator=gen(1)), pos, neg, steps=1, cfg=2.0)
    assert torch.isfinite(out).all()
    spatial = [s for k, s in kinds if k == "spatial"]
    temporal = [s for k, s in kinds if k == "temporal"]
    assert len(spatial) == len(temporal) > 0
    assert all(s[0] == 2 * frames for s in spatial)  # (chunks·F, h·w, C)
    assert all(s[1] == frames for s in temporal)     # (chunks·h·w, F, C)


def test_model_without_self_attention_is_a_clear_error(node, comfy):
    from scripts import tiny_models
    no_attn = tiny_models.tiny_sd15(transformer_depth=[0, 0], transformer_depth_output=[0, 0, 0, 0],
                                    transformer_depth_middle=-1)
    with pytest.raises(ValueError, match="has no U-Net self-attention blocks"):
        patched(node, no_attn)


def test_validation_rejects_an_inverted_or_out_of_range_sigma_range(node):
    assert "must not be greater" in node.validate_inputs(anchor="first", start_percent=0.8, end_percent=0.2)
    assert "between 0.0 and 1.0" in node.validate_inputs(anchor="first", start_percent=-0.1, end_percent=0.2)
    assert "anchor must be one of first" in node.validate_inputs(anchor="last", start_percent=0, end_percent=1)
    assert node.validate_inputs(anchor="previous", start_percent=None, end_percent=0.5) is True


def test_three_chunks_as_in_instruct_pix2pix_dual_guidance(node, sd15):
    import comfy.samplers
    from comfy_extras.nodes_custom_sampler import Guider_DualCFG
    pos, neg = sd15_conds(sd15)
    mid, _ = sd15_conds(sd15, seed=9)
    noise = torch.randn(3, 4, 8, 8, generator=gen(10))
    sigmas = comfy.samplers.calculate_sigmas(sd15.get_model_object("model_sampling"), "normal", 2)

    def run(model):
        guider = Guider_DualCFG(model)
        guider.set_conds(pos, mid, neg)
        guider.set_cfg(7.5, 1.5)
        return guider.sample(noise, torch.zeros_like(noise), comfy.samplers.sampler_object("euler"), sigmas,
                             seed=0, disable_pbar=True)
    seen = []
    ours = record_chunks(patched(node, sd15), seen)
    a, b = run(ours), run(with_reference(sd15))
    assert {len(s) for s in seen} == {3}
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_under_context_windows_global_frame_zero_stays_the_anchor(node, sd15):
    # Every frame's output depends only on itself and frame 0, and frame 0's states are the same in any
    # window that holds it; so windowed sampling must reproduce the full-batch result, also for the frames
    # whose windows do not contain frame 0.
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(8, 4, 8, 8, generator=gen(13))
    windows = []
    patch = patched(node, sd15)
    spy = patch.clone()

    def see(n, c, v, extra):
        if "context_window" in extra:
            windows.append(tuple(extra["context_window"].index_list))
        return n, c, v
    spy.set_model_attn1_patch(see)
    # ComfyUI 0.3.75's IndexListContextHandler.set_step compares the schedule with the per-frame sigma
    # tensor and only runs when frames == steps + 1 (fixed upstream later): 8 frames, 7 steps.
    steps = 7
    windowed = sample(with_context_windows(spy), noise, pos, neg, steps=steps)
    assert any(0 not in w for w in windows), windows
    full = sample(patch, noise, pos, neg, steps=steps)
    assert_close_scaled(windowed, full)
    without_anchor_cache = sample(with_context_windows(patched(node, sd15, "previous")), noise, pos, neg,
                                  steps=steps)
    assert (without_anchor_cache - full).abs().max() > 1e-2


def with_videos(kind: str, model, videos: int):
    from zerovideo.nodes.text2video_zero import CrossFrameAttentionPatch
    from zerovideo.nodes.zs2 import TemporalMomentumAttention
    if kind == "cross-frame":
        return CrossFrameAttentionPatch.execute(model=model, anchor="first+previous", start_percent=0.0,
                                                end_percent=1.0, videos=videos).args[0]
    return TemporalMomentumAttention.execute(model=model, mu=0.9, anchor_mix=0.0, start_percent=0.0,
                                             end_percent=1.0, videos=videos).args[0]


@pytest.mark.parametrize("kind", ["cross-frame", "momentum"])
def test_several_videos_in_one_batch_read_only_their_own_frames(sd15, kind):
    """Dependency Noise's `videos` puts several videos in one batch; the attention nodes must then keep them
    apart: the batched run equals each video sampled on its own."""
    pos, neg = sd15_conds(sd15)
    noise = torch.randn(6, 4, 8, 8, generator=gen(21))
    one_model = with_videos(kind, sd15, 1)
    each = torch.cat([sample(one_model, noise[:3], pos, neg, steps=2), sample(one_model, noise[3:], pos, neg, steps=2)])
    together = sample(with_videos(kind, sd15, 2), noise, pos, neg, steps=2)
    assert_close_scaled(together, each)
    as_one_video = sample(one_model, noise, pos, neg, steps=2)  # video 2 reads video 1's frames
    assert float((as_one_video[3:] - each[3:]).abs().max()) > 1e-3 * max(1.0, float(each.abs().max()))
    node = "Cross-Frame Attention" if kind == "cross-frame" else "Temporal Momentum Attention"
    with pytest.raises(ValueError, match=rf"^{node}: the latent batch has 5 frames, which do not split into "
                                         r"videos=2 equal videos\. Set the batch size to videos × frames per "
                                         r"video\.$"):
        sample(with_videos(kind, sd15, 2), noise[:5], pos, neg, steps=1)


def test_the_sigma_range_includes_both_ends(sd15, pack):
    """Like ComfyUI's own timestep ranges, a patch is on at exactly its start and end sigmas, off just outside."""
    import math
    from zerovideo.nodes._patching import SigmaRange
    r = SigmaRange(sd15, 0.2, 0.6)
    assert r.sigma_start > r.sigma_end > 0
    assert r.active(r.sigma_start) and r.active(r.sigma_end)
    assert not r.active(math.nextafter(r.sigma_start, math.inf))
    assert not r.active(math.nextafter(r.sigma_end, 0.0))
    assert {"sigmas": torch.tensor([r.sigma_end])} in r and {"sigmas": torch.tensor([r.sigma_end / 2])} not in r
    assert r.active(None) and {} in r  # a call outside sampling (no sigma) is not cut off


def test_on_a_video_u_net_without_the_call_counter_the_activation_shape_decides(pack):
    """An SVD attention call outside the counted model call (no counter in its options): spatial only when the
    batch and token count match the activations (frames · chunks, h · w); unknown shape or a mismatch: temporal."""
    from zerovideo.nodes._patching import spatial_layout
    n = torch.zeros(8, 12, 4)  # 2 chunks × 4 frames, 3 × 4 tokens
    assert spatial_layout(n, {"cond_or_uncond": [0, 1], "activations_shape": (8, 4, 3, 4)}, True) == (2, 4)
    assert spatial_layout(n, {"cond_or_uncond": [0, 1]}, True) is None
    assert spatial_layout(n, {"cond_or_uncond": [0, 1], "activations_shape": (6, 4, 3, 4)}, True) is None
    assert spatial_layout(n, {"cond_or_uncond": [0, 1], "activations_shape": (8, 4, 2, 4)}, True) is None
