"""Isolation and determinism on one server and across servers: graphs do not leak patch state, seeds repeat."""
from zv_testing import tiny_prompt

from scripts.comfy_server import default_server


def saved(client, prompt):
    """(file name, bytes) of the first image a prompt saves; runs it for real (nothing cached from before)."""
    client.forget_cache()
    hist = client.run(prompt)
    images = next(o["images"] for o in hist["outputs"].values() if "images" in o)
    return images[0]["filename"], client.view(images[0])


def test_alternating_graphs_do_not_leak_patch_state(client, object_info):
    patched = tiny_prompt(object_info, "zs2_text_to_video", ["EmptyLatentImage.batch_size=3"])
    plain = tiny_prompt(object_info, "sd15_frames_baseline", ["EmptyLatentImage.batch_size=3", "KSampler.steps=2"])
    runs = [saved(client, p) for p in (plain, patched, plain, patched)]
    assert len({name for name, _ in runs}) == 4  # all four executed
    assert runs[0][1] == runs[2][1], "the plain graph changed after a patched graph ran on the same server"
    assert runs[1][1] == runs[3][1]
    assert runs[0][1] != runs[1][1]


def test_a_patched_dit_graph_leaves_the_same_dit_unpatched_for_the_next_graph(client, object_info):
    """The same for a DiT, whose patches live in the attention override and an APPLY_MODEL wrapper of the clone:
    the Flux text-to-video graph with and without Cross-Frame Attention, alternating on one loaded model."""
    sets = ["EmptySD3LatentImage.batch_size=3", "BasicScheduler.steps=2"]
    patched = tiny_prompt(object_info, "flux_t2vz_text_to_video", sets)
    plain = tiny_prompt(object_info, "flux_t2vz_text_to_video", sets)
    patch = next(k for k, n in plain.items() if n["class_type"] == "ZeroVideo.CrossFrameAttentionPatch")
    guider = next(n for n in plain.values() if n["class_type"] == "BasicGuider")
    guider["inputs"]["model"] = plain.pop(patch)["inputs"]["model"]  # the loader's model, straight to the guider
    runs = [saved(client, p) for p in (plain, patched, plain, patched)]
    assert len({name for name, _ in runs}) == 4  # all four executed
    assert runs[0][1] == runs[2][1], "the unpatched Flux changed after a patched graph ran on the same server"
    assert runs[1][1] == runs[3][1]
    assert runs[0][1] != runs[1][1]


def test_same_seed_is_bit_identical_across_a_server_restart(client, object_info, tmp_path):
    prompt = tiny_prompt(object_info, "t2vz_text_to_video", ["EmptyLatentImage.batch_size=3",
                                                              "RandomNoise.noise_seed=21"])
    _, here = saved(client, prompt)
    with default_server(tmp_path / "second") as other:
        _, there = saved(other.client(), prompt)
    assert here == there
