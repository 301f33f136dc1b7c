"""Every node that takes a MODEL refuses a DiT it does not support with a message that says which models it
works with, before anything runs; the DiT's own patcher is left untouched. The SVD nodes on SD3's MMDiT; the
attention nodes (which take Flux and SD3) on a video DiT, Wan 2.1 (tiny, random weights)."""
import pytest

ATTENTION_NODES = ("CrossFrameAttentionPatch", "TemporalMomentumAttention")


@pytest.fixture(scope="module")
def dits(comfy):
    from scripts import tiny_models
    return {"sd3": tiny_models.tiny_sd3(), "wan": tiny_models.tiny_wan()}


def calls(pack):
    from zerovideo.nodes import exvideo, text2video_zero, zerosmooth, zs2
    return {
        "CrossFrameAttentionPatch": (lambda m: text2video_zero.CrossFrameAttentionPatch.execute(
            model=m, anchor="first", start_percent=0.0, end_percent=1.0), "no U-Net self-attention blocks"),
        "TemporalMomentumAttention": (lambda m: zs2.TemporalMomentumAttention.execute(
            model=m, mu=0.98, anchor_mix=0.0, start_percent=0.0, end_percent=1.0), "no U-Net self-attention blocks"),
        "HiddenStateCorrection": (lambda m: zerosmooth.HiddenStateCorrection.execute(
            model=m, strength=0.8, schedule="linear", loop=False), "needs a Stable Video Diffusion model"),
        "SelfCascadeInterpolate": (lambda m: zerosmooth.SelfCascadeInterpolate.execute(
            model=m, positive=[], negative=[], factor="x2", key_frames=4, cfg=2.5, color_fix=False),
            "needs a Stable Video Diffusion model"),
        "ExVideoTemporalExtend": (lambda m: exvideo.ExVideoTemporalExtend.execute(
            model=m, mode="interpolate", extension=exvideo.NO_FILE), "needs a Stable Video Diffusion model"),
    }


@pytest.mark.parametrize("node", ["CrossFrameAttentionPatch", "TemporalMomentumAttention", "HiddenStateCorrection",
                                  "SelfCascadeInterpolate", "ExVideoTemporalExtend"])
def test_a_dit_is_refused_naming_the_supported_models(pack, dits, node):
    dit = dits["wan" if node in ATTENTION_NODES else "sd3"]
    call, message = calls(pack)[node]
    before = (dict(dit.model_options), dict(dit.object_patches), len(dit.patches))
    with pytest.raises(ValueError, match=message) as err:
        call(dit)
    assert type(dit.model.diffusion_model).__name__ in str(err.value)  # names the model it was given
    assert (dict(dit.model_options), dict(dit.object_patches), len(dit.patches)) == before
