"""Every error a kernel raises, word for word, each triggered by the one input it is about (and no other axis
that would fail the same way): a message is the user's only view of what went wrong."""

import pytest
import torch
from zv_testing import exactly

from zerovideo.kernels import attention as A
from zerovideo.kernels import cascade as Z
from zerovideo.kernels import tiles as T
from zerovideo.kernels import warp as W


CASES = [
    # 6 rows, 4 tokens, 2 channels: only the batch axis fails to split into 4 chunks
    (lambda: A.split_frames(torch.zeros(6, 4, 2), 4), "batch 6 does not split into 4 equal chunks"),
    (lambda: A.split_frames(torch.zeros(6, 4, 2), 0), "batch 6 does not split into 0 equal chunks"),
    (lambda: A.anchor_index("next", 3), "unknown anchor 'next'"),
    (lambda: A.cross_frame_kv(torch.zeros(4, 2, 2), 2, "last"),
     "unknown anchor mode 'last'; choose one of first, previous, first+previous, first+self"),
    (lambda: A.momentum_kv(torch.zeros(4, 2, 2), 2, 1.5), "momentum mu must be in [0, 1], got 1.5"),
    (lambda: A.momentum_kv(torch.zeros(4, 2, 2), 2, -0.1), "momentum mu must be in [0, 1], got -0.1"),
    (lambda: A.momentum_kv(torch.zeros(4, 2, 2), 2, 0.5, 1.5), "anchor_mix must be in [0, 1], got 1.5"),
    (lambda: A.momentum_kv(torch.zeros(4, 2, 2), 2, 0.5, -0.5), "anchor_mix must be in [0, 1], got -0.5"),
    # 3 frames, 4 channels: only the frame axis is odd
    (lambda: Z.apply_op("A", torch.zeros(3, 4)), "the long branch needs an even frame count, got 3"),
    (lambda: Z.apply_op("B", torch.zeros(4, 2)), "unknown operator 'B'; choose one of A, A1, A2"),
    (lambda: Z.apply_pinv("B", torch.zeros(2, 2)), "unknown operator 'B'; choose one of A, A1, A2"),
    (lambda: Z.correct("A", torch.zeros(6, 4), torch.zeros(2, 4)),
     "long branch has 6 frames, key branch 2: expected 2×"),
    (lambda: Z.correct("B", torch.zeros(4, 2), torch.zeros(2, 2)), "unknown operator 'B'; choose one of A, A1, A2"),
    (lambda: Z.correct_kv(torch.zeros(4, 2), torch.zeros(2, 2), "A"), "keys/values use A1 or A2, got 'A'"),
    (lambda: W.warp_latents(torch.zeros(1, 4, 8, 8), torch.zeros(2, 4), "cubic"),
     "unknown interpolation 'cubic'; choose one of nearest, bilinear"),
    (lambda: W.warp_latents(torch.zeros(3, 4, 8, 8), torch.zeros(2, 4)), "3 latents for 2 motion rows"),
    (lambda: W.renoise(torch.zeros(1, 4, 2, 2), 2.0, 1.0, torch.zeros(1, 4, 2, 2)),
     "re-noising goes up in noise: sigma_to 1.0 < sigma_from 2.0"),
    (lambda: W.paper_steps(50, 47, 44), "need 0 ≤ t0 < t1 < 50, got t0=47, t1=44"),
    (lambda: W.paper_steps(50, -1, 44), "need 0 ≤ t0 < t1 < 50, got t0=-1, t1=44"),
    (lambda: W.paper_steps(50, 44, 50), "need 0 ≤ t0 < t1 < 50, got t0=44, t1=50"),
    # temporal tiles: one bad argument each
    (lambda: T.temporal_tiles(0, 4, 1), "need at least one frame and one frame per tile, got frames=0, tile=4"),
    (lambda: T.temporal_tiles(8, 0, 0), "need at least one frame and one frame per tile, got frames=8, tile=0"),
    (lambda: T.temporal_tiles(10, 4, 4), "overlap must be between 0 and tile - 1 (3), got 4"),
    (lambda: T.temporal_tiles(10, 4, -1), "overlap must be between 0 and tile - 1 (3), got -1"),
    (lambda: T.blend_tiles(10, [(2, 6)], lambda s, e: torch.zeros(3, 1)),
     "decoding frames 2..5 gave 3 frames, expected 4"),
    (lambda: T.blend_tiles(10, [(0, 4), (6, 10)], lambda s, e: torch.zeros(e - s, 1)),
     "the windows do not cover every frame"),
    (lambda: T.blend_tiles(3, [], lambda s, e: torch.zeros(e - s, 1)), "the windows do not cover every frame"),
]


@pytest.mark.parametrize("call,message", CASES, ids=[m[:40] for _, m in CASES])
def test_kernel_errors_word_for_word(call, message):
    with pytest.raises(ValueError, match=exactly(message)):
        call()


def test_the_edges_of_the_valid_ranges_are_accepted():
    x = torch.randn(4, 2, 3)
    assert torch.equal(A.momentum_kv(x, 2, 1.0, 1.0), A.momentum_kv(x, 2, 1.0, 1.0))  # both bounds inclusive
    assert torch.equal(A.momentum_kv(x, 2, 0.0), x)
    assert W.paper_steps(50, 0, 49) == (0, 49)
