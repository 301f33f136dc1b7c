"""Text2Video-Zero over HTTP: bad inputs get clear errors, and the server keeps serving."""
import pytest
from zv_testing import tiny_prompt

from scripts.comfy_server import ComfyError


def node_errors(client, prompt) -> str:
    status, body = client.queue(prompt)
    assert body.get("node_errors"), body
    return str(body["node_errors"])


def test_t0_not_below_t1_is_a_validation_error(client, object_info):
    errs = node_errors(client, tiny_prompt(object_info, "t2vz_text_to_video",
                                           ["ZeroVideo.Text2VideoZeroSampler.t0=47",
                                            "ZeroVideo.Text2VideoZeroSampler.t1=44"]))
    assert "must be smaller than t1" in errs


def test_unknown_anchor_mode_is_a_validation_error(client, object_info):
    errs = node_errors(client, tiny_prompt(object_info, "t2vz_text_to_video",
                                           ["ZeroVideo.CrossFrameAttentionPatch.anchor=\"last\""]))
    assert "anchor" in errs


def test_one_frame_fails_with_a_clear_message_then_a_good_prompt_runs(client, object_info):
    with pytest.raises(ComfyError, match="the latent has 1 frame"):
        client.run(tiny_prompt(object_info, "t2vz_text_to_video", ["EmptyLatentImage.batch_size=1"]))
    hist = client.run(tiny_prompt(object_info, "t2vz_text_to_video", ["RandomNoise.noise_seed=3",
                                                                       "EmptyLatentImage.batch_size=3"]))
    assert "3 frames" in next(o["text"][0] for o in hist["outputs"].values() if "text" in o)


def test_same_seed_gives_identical_video_bytes(client, object_info):
    def run():
        hist = client.run(tiny_prompt(object_info, "t2vz_text_to_video", ["RandomNoise.noise_seed=11",
                                                                           "EmptyLatentImage.batch_size=3"]))
        client.free()  # identical prompts are cached: make the second one execute again
        images = next(o["images"] for o in hist["outputs"].values() if "images" in o)
        return client.view(images[0])
    a, b = run(), run()
    assert a[:4] == b"RIFF" and a == b
