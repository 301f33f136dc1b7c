"""The tiny models are what every other test stands on: prove they are what ComfyUI thinks they are."""
import pytest
import torch


def test_checkpoints_load_with_the_stock_loaders_as_the_right_family(tiny_checkpoints):
    import comfy.model_base
    import comfy.sd
    from scripts.tiny_models import SD15_NAME, SVD_NAME
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(tiny_checkpoints[SD15_NAME]))[:4]
    assert type(model.model.model_config).__name__ == "SD15"
    assert clip is not None and vae is not None
    out = comfy.sd.load_checkpoint_guess_config(str(tiny_checkpoints[SVD_NAME]), output_vae=True,
                                                output_clip=False, output_clipvision=True)
    assert isinstance(out[0].model, comfy.model_base.SVD_img2vid)
    assert out[3] is not None  # CLIP vision


@pytest.mark.parametrize("family", ["sd15", "svd"])
def test_python_level_tiny_models_sample_finite_and_deterministic(comfy, family):
    import comfy.sample
    from scripts import tiny_models
    frames = 3
    if family == "sd15":
        mp = tiny_models.tiny_sd15()
        cond = [[torch.randn(1, 77, 64, generator=torch.Generator().manual_seed(1)), {}]]
    else:
        mp = tiny_models.tiny_svd()
        extra = {"concat_latent_image": torch.zeros(1, 4, 8, 8), "fps": 6, "motion_bucket_id": 127,
                 "augmentation_level": 0.0}
        cond = [[torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(1)), extra]]
    latent = torch.zeros(frames, 4, 8, 8)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))

    def run():
        return comfy.sample.sample(mp, noise, 2, 3.0, "euler", "normal", cond, cond, latent, seed=0,
                                   disable_pbar=True)

    a, b = run(), run()
    assert a.shape == latent.shape and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
