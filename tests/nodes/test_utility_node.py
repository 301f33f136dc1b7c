"""LatentVideoInfo in-process, as ComfyUI's executor calls it."""
import pytest
import torch


def test_latent_video_info_reports_frames_and_pixels(pack):
    from zerovideo.nodes.utility import LatentVideoInfo
    latent = {"samples": torch.zeros(8, 4, 12, 10)}
    out = LatentVideoInfo.execute(latent=latent)
    assert out.args[0] is latent
    assert out.args[1:] == (8, 80, 96)
    assert out.ui == {"text": ["8 frames, 4 channels, 80x96 px"]}


def test_latent_video_info_flags_non_finite_latents(pack):
    from zerovideo.nodes.utility import LatentVideoInfo
    samples = torch.zeros(2, 4, 8, 8)
    samples[1, 0, 0, 0] = float("nan")
    assert "NON-FINITE" in LatentVideoInfo.execute(latent={"samples": samples}).ui["text"][0]


def test_latent_video_info_rejects_non_latent_shapes(pack):
    from zerovideo.nodes.utility import latent_frames
    with pytest.raises(ValueError, match="4-D or 5-D latent"):
        latent_frames(torch.zeros(4, 8, 8))
