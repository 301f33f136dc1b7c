"""ZS² over HTTP: out-of-range knobs are refused by validation, naming the input; the server keeps serving."""
import pytest
from zv_testing import tiny_prompt


@pytest.mark.parametrize("setting,name", [("ZeroVideo.DependencyNoise.noise_lambda=-0.1", "noise_lambda"),
                                          ("ZeroVideo.TemporalMomentumAttention.mu=1.5", "mu"),
                                          ("ZeroVideo.TemporalMomentumAttention.mu=-0.5", "mu"),
                                          ("ZeroVideo.DependencyNoise.mode=\"magic\"", "mode")])
def test_bad_knobs_are_validation_errors_naming_the_input(client, object_info, setting, name):
    status, body = client.queue(tiny_prompt(object_info, "zs2_text_to_video", [setting]))
    errors = body.get("node_errors") or {}
    assert errors, body
    assert any(name in str(e.get("details", "")) + e.get("message", "")
               for info in errors.values() for e in info["errors"]), errors


def test_one_frame_fails_clearly_then_a_good_prompt_runs(client, object_info):
    from scripts.comfy_server import ComfyError
    with pytest.raises(ComfyError, match="at least 2 frames"):
        client.run(tiny_prompt(object_info, "zs2_text_to_video", ["EmptyLatentImage.batch_size=1"]))
    hist = client.run(tiny_prompt(object_info, "zs2_text_to_video", ["ZeroVideo.DependencyNoise.seed=5",
                                                                      "EmptyLatentImage.batch_size=2"]))
    assert hist["status"]["status_str"] == "success"
