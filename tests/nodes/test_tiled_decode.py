"""VAE Decode (Temporal Tiles) on ComfyUI's own VAEs: SVD's (a temporal decoder, full size, random weights) and
TAESD (frame by frame), against core VAE Decode and a cross-fade of per-window decodes written out by hand."""
import pytest
import torch
from zv_testing import exactly, progress_calls


@pytest.fixture(scope="module")
def svd_vae(comfy):
    from scripts import tiny_models
    return tiny_models.svd_vae(seed=3)


def latent(frames, seed=0):
    return {"samples": torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(seed))}


def tiled(vae, samples, frames_per_tile, overlap):
    from zerovideo.nodes.utility import TemporalTiledVAEDecode
    with torch.inference_mode():
        return TemporalTiledVAEDecode.execute(samples=samples, vae=vae, frames_per_tile=frames_per_tile,
                                              overlap=overlap)


def core_decode(vae, samples):
    import nodes
    with torch.inference_mode():
        return nodes.VAEDecode().decode(vae, samples)[0]


def by_hand(vae, z, windows, weights):
    """Each window through the VAE model itself, ComfyUI's [-1, 1] → [0, 1] by hand, frames mixed by weight."""
    out = torch.zeros(z.shape[0], 3, z.shape[2] * 8, z.shape[3] * 8, dtype=torch.float64)
    total = torch.zeros(z.shape[0], dtype=torch.float64)
    with torch.inference_mode():
        for (s, e), w in zip(windows, weights):
            x = vae.first_stage_model.decode(z[s:e].to(vae.vae_dtype)).double()
            x = ((x + 1) / 2).clamp(0, 1)
            out[s:e] += x * torch.tensor(w, dtype=torch.float64).view(-1, 1, 1, 1)
            total[s:e] += torch.tensor(w, dtype=torch.float64)
    return (out / total.view(-1, 1, 1, 1)).movedim(1, -1)


def test_a_tile_as_long_as_the_clip_is_core_vae_decode_bit_for_bit(svd_vae):
    s = latent(10)
    ref = core_decode(svd_vae, s)
    for frames_per_tile in (10, 64):
        out = tiled(svd_vae, s, frames_per_tile, 4)
        assert torch.equal(out.args[0], ref)
        assert out.ui == {"text": ["10 frames in 1 window(s) of 10"]}


def test_svd_windows_are_cross_faded_as_written_by_hand(svd_vae):
    s = latent(10, seed=1)
    z = s["samples"]
    # SVD's decoder mixes frames: a window decoded alone is not the same as those frames in the whole clip
    whole = core_decode(svd_vae, s)
    assert (core_decode(svd_vae, {"samples": z[2:6]}) - whole[2:6]).abs().max() > 0.05
    third = 1 / 3
    windows = [(0, 4), (2, 6), (4, 8), (6, 10)]
    weights = [[1, 1, 2 * third, third], [third, 2 * third, 2 * third, third],
               [third, 2 * third, 2 * third, third], [third, 2 * third, 1, 1]]
    out = tiled(svd_vae, s, 4, 2)
    ref = by_hand(svd_vae, z, windows, weights)
    assert out.args[0].shape == (10, 32, 32, 3)
    assert (out.args[0].double() - ref).abs().max() <= 1e-5
    assert out.ui == {"text": ["10 frames in 4 window(s) of 4"]}


def test_the_progress_bar_moves_one_step_per_window(svd_vae):
    with progress_calls() as calls:
        tiled(svd_vae, latent(10, seed=2), 4, 2)  # windows (0, 4), (2, 6), (4, 8), (6, 10)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_frame_by_frame_vae_decodes_the_same_tiled_or_not(comfy):
    import comfy.sd
    from scripts import tiny_models
    vae = comfy.sd.VAE(sd=tiny_models._taesd_sd(5))
    s = latent(9, seed=2)
    ref = core_decode(vae, s)
    out = tiled(vae, s, 4, 1).args[0]
    assert (out - ref).abs().max() <= 1e-6 * ref.abs().max()


def test_windows_shrink_to_what_comfyui_says_fits_and_the_node_says_so(svd_vae, monkeypatch, caplog):
    import comfy.model_management as mm
    s = latent(10, seed=4)
    per_frame = svd_vae.memory_used_decode(s["samples"].shape, svd_vae.vae_dtype)
    monkeypatch.setattr(mm, "get_free_memory", lambda *a, **k: 3.5 * per_frame)
    out = tiled(svd_vae, s, 8, 4)
    monkeypatch.undo()
    text = out.ui["text"][0]
    assert text.startswith("10 frames in 5 window(s) of 3; ComfyUI estimates that 3 frame(s) fit in free memory: "
                           "windows of 3 frames (overlap 1) instead of 8 (overlap 4).")
    assert "fit in free memory" in caplog.text
    from zerovideo.kernels import tiles as T
    windows = T.temporal_tiles(10, 3, 1)
    ref = by_hand(svd_vae, s["samples"], windows, [w.tolist() for w in T.tile_weights(windows)])
    assert (out.args[0].double() - ref).abs().max() <= 1e-5


def test_bad_inputs_are_refused_by_name(svd_vae):
    from zerovideo.nodes.utility import TemporalTiledVAEDecode
    assert TemporalTiledVAEDecode.validate_inputs(frames_per_tile=8, overlap=4) is True
    assert TemporalTiledVAEDecode.validate_inputs(frames_per_tile=8, overlap=5) == (
        "overlap (5) must be at most half of frames_per_tile (8), i.e. 4")
    with pytest.raises(ValueError, match=exactly(
            "VAE Decode (Temporal Tiles): samples has shape (1, 16, 3, 4, 4), a latent of a video VAE (frames "
            "compressed inside it). This node is for frame-batch latents (SVD, SD1.5, SDXL); for video VAEs use core "
            "VAE Decode (Tiled) with temporal_size.")):
        tiled(svd_vae, {"samples": torch.zeros(1, 16, 3, 4, 4)}, 8, 2)
    bad = latent(4)
    bad["samples"][2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"VAE Decode \(Temporal Tiles\): samples contains NaN .* frame\(s\) \(2\)"):
        tiled(svd_vae, bad, 8, 2)


@pytest.mark.parametrize("fits,frames_per_tile,overlap,windows", [
    (8, 8, 4, "10 frames in 2 window(s) of 8"),
    (1, 8, 4, "10 frames in 10 window(s) of 1"),
    (4, 8, 4, "10 frames in 4 window(s) of 4; ComfyUI estimates that 4 frame(s) fit in free memory: windows of 4 "
              "frames (overlap 2) instead of 8 (overlap 4).")])
def test_windows_shrink_only_below_what_fits_and_down_to_one_frame(svd_vae, monkeypatch, caplog, fits,
                                                                    frames_per_tile, overlap, windows):
    import comfy.model_management as mm
    s = latent(10, seed=5)
    per_frame = svd_vae.memory_used_decode(s["samples"].shape, svd_vae.vae_dtype)
    monkeypatch.setattr(mm, "get_free_memory", lambda *a, **k: (fits + 0.5) * per_frame)
    out = tiled(svd_vae, s, frames_per_tile, overlap)
    monkeypatch.undo()
    text = out.ui["text"][0]
    assert text.startswith(windows)
    assert ("fit in free memory" in text) == (fits < frames_per_tile)  # exactly as many as fit: no shrinking
    logged = [r.getMessage() for r in caplog.records if "fit in free memory" in r.getMessage()]
    assert logged == ([f"VAE Decode (Temporal Tiles): {text.split('; ', 1)[1]}"] if fits < frames_per_tile else [])
    if fits == 1:  # one frame at a time: each frame decoded alone, no cross-fade
        ref = torch.cat([by_hand(svd_vae, s["samples"][f:f + 1], [(0, 1)], [[1.0]]) for f in range(10)])
        assert (out.args[0].double() - ref).abs().max() <= 1e-5
