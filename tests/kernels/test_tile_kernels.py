"""Temporal tiles (kernels/tiles.py): windows, cross-fade weights and the blend, against values worked by hand."""
import math

import pytest
import torch

from zerovideo.kernels import tiles as T


def test_windows_worked_by_hand():
    assert T.temporal_tiles(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    # 128 frames, 16 per window, ≥ 4 shared: ceil(124 / 12) = 11 windows, starts i·112/10 rounded
    assert [s for s, _ in T.temporal_tiles(128, 16, 4)] == [0, 11, 22, 34, 45, 56, 67, 78, 90, 101, 112]
    assert T.temporal_tiles(7, 3, 0) == [(0, 3), (2, 5), (4, 7)]
    assert T.temporal_tiles(5, 8, 2) == [(0, 5)]
    assert T.temporal_tiles(16, 16, 4) == [(0, 16)]


@pytest.mark.parametrize("frames,tile,overlap", [(f, t, o) for f in (1, 2, 9, 25, 64, 100, 128)
                                                 for t in (1, 2, 3, 8, 14, 16, 30) for o in range(0, t // 2 + 1, 2)])
def test_windows_cover_the_clip_with_the_fewest_windows(frames, tile, overlap):
    w = T.temporal_tiles(frames, tile, overlap)
    assert w[0][0] == 0 and w[-1][1] == frames
    assert all(e - s == min(tile, frames) for s, e in w)
    assert all(b[0] > a[0] and a[1] - b[0] >= overlap for a, b in zip(w, w[1:]))
    # one window fewer, even packed as tightly as allowed, would not reach the end
    if len(w) > 1:
        assert (len(w) - 2) * (tile - overlap) + tile < frames


def test_weights_worked_by_hand():
    third = 1 / 3
    expected = [[1, 1, 2 * third, third], [third, 2 * third, 2 * third, third],
                [third, 2 * third, 2 * third, third], [third, 2 * third, 1, 1]]
    got = T.tile_weights(T.temporal_tiles(10, 4, 2))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, torch.tensor(e, dtype=torch.float64), rtol=0, atol=1e-15)


def test_blend_of_constant_windows_worked_by_hand():
    # window k decodes to the constant k + 1: a frame shared by windows k and k+1 (weights a, b) gets
    # (a·(k+1) + b·(k+2)) / (a + b), the ramps of the hand-worked weights above
    out = T.blend_tiles(10, T.temporal_tiles(10, 4, 2),
                        lambda s, e: torch.full((e - s, 2), float(s // 2 + 1), dtype=torch.float64))
    expected = [1, 1, 4 / 3, 5 / 3, 7 / 3, 8 / 3, 10 / 3, 11 / 3, 4, 4]
    torch.testing.assert_close(out[:, 0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(out[:, 0], out[:, 1])


def test_one_window_is_the_decode_itself_bit_for_bit():
    y = torch.randn(9, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(T.blend_tiles(9, T.temporal_tiles(9, 16, 4), lambda s, e: y[s:e].clone()), y)


@pytest.mark.parametrize("tile,overlap", [(4, 2), (5, 1), (3, 0), (8, 4)])
def test_frame_wise_decoder_gives_the_whole_clip_decode(tile, overlap):
    # a decoder that treats frames independently must give the same frames tiled or not (weights sum to one)
    z = torch.randn(23, 4, 3, 3, generator=torch.Generator().manual_seed(1))

    def decode(x):
        return torch.tanh(3 * x) * 0.5 + x.mean(dim=(1, 2, 3), keepdim=True)

    whole = decode(z)
    tiled = T.blend_tiles(23, T.temporal_tiles(23, tile, overlap), lambda s, e: decode(z[s:e]))
    assert (tiled - whole).abs().max() <= 1e-6 * whole.abs().max()


def test_every_output_frame_is_a_convex_mix_of_its_windows():
    # temporal decoders differ per window: each frame must lie between its windows' values
    rows = []

    def decode(s, e):
        v = torch.randn(e - s, 1, generator=torch.Generator().manual_seed(s))
        rows.append((s, v))
        return v

    out = T.blend_tiles(30, T.temporal_tiles(30, 8, 3), decode)
    for f in range(30):
        vals = [float(v[f - s]) for s, v in rows if s <= f < s + 8]
        assert min(vals) - 1e-12 <= float(out[f]) <= max(vals) + 1e-12


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"overlap must be between 0 and tile - 1 \(3\), got 4"):
        T.temporal_tiles(10, 4, 4)
    with pytest.raises(ValueError, match="at least one frame"):
        T.temporal_tiles(0, 4, 1)
    with pytest.raises(ValueError, match=r"decoding frames 0..3 gave 3 frames, expected 4"):
        T.blend_tiles(10, T.temporal_tiles(10, 4, 2), lambda s, e: torch.zeros(3, 1))
    assert math.isclose(sum(float(w.sum()) for w in T.tile_weights([(0, 10)])), 10)


def test_where_both_ramps_of_a_window_meet_its_weight_is_their_product():
    # 10 frames, windows of 6 sharing ≥ 4: (0,6) (2,8) (4,10); the middle one shares 4 frames on each side, so
    # its rising ramp (1/5 … 4/5 over its first 4) and its falling one (4/5 … 1/5 over its last 4) overlap
    w = T.tile_weights(T.temporal_tiles(10, 6, 4))
    f = 1 / 5
    torch.testing.assert_close(w[1], torch.tensor([f, 2 * f, 3 * f * 4 * f, 4 * f * 3 * f, 2 * f, f],
                                                  dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(w[0], torch.tensor([1, 1, 4 * f, 3 * f, 2 * f, f], dtype=torch.float64),
                               rtol=0, atol=1e-15)
