"""ExVideo over HTTP: bad extension files and too many frames give clear errors; the server keeps serving."""
import pytest
import torch
from zv_testing import tiny_prompt

from scripts.comfy_server import ComfyError

WF = "exvideo_svd_128_frames"
FAST = ["SVD_img2vid_Conditioning.video_frames=4", "KSampler.steps=1"]

@pytest.fixture(scope="module")
def bad_files(server):
    import safetensors.torch
    folder = server.workdir / "models" / "exvideo"
    torch.save({"x": torch.zeros(1)}, folder / "zv_evil.ckpt")
    (folder / "zv_cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    safetensors.torch.save_file({"unet.weight": torch.zeros(2)}, folder / "zv_other.safetensors")
    safetensors.torch.save_file({"blocks.185.positional_embedding.embeddings": torch.zeros(128, 999)},
                                folder / "zv_partial.safetensors")
    return folder

@pytest.mark.parametrize("name,message", [
    ("zv_evil.ckpt", "Pickle-based files"),
    ("zv_cut.safetensors", "could not be read as safetensors"),
    ("zv_other.safetensors", "not an ExVideo extension file"),
    ("zv_partial.safetensors", "incomplete"),
])
def test_bad_extension_files_fail_clearly_and_the_server_keeps_serving(client, bad_files, name, message):
    object_info = client.object_info()
    assert name in object_info["ZeroVideo.ExVideoTemporalExtend"]["input"]["required"]["extension"][1]["options"]
    prompt = tiny_prompt(object_info, WF, FAST + [f"ZeroVideo.ExVideoTemporalExtend.extension=\"{name}\""])
    with pytest.raises(ComfyError, match=message):
        client.run(prompt)
    good = tiny_prompt(object_info, WF, FAST + ["KSampler.seed=5"])
    assert client.run(good)["status"]["status_str"] == "success"

def test_non_svd_model_is_refused_over_http(client, object_info):
    prompt = tiny_prompt(object_info, "sd15_frames_baseline", ["KSampler.steps=1"])
    prompt["90"] = {"class_type": "ZeroVideo.ExVideoTemporalExtend",
                    "inputs": {"model": ["1", 0], "mode": "interpolate", "extension": "(none: training-free modes)"}}
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "KSampler")
    prompt[sampler]["inputs"]["model"] = ["90", 0]
    with pytest.raises(ComfyError, match="needs a Stable Video Diffusion model"):
        client.run(prompt)
