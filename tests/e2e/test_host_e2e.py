"""The foundation end to end: the real ComfyUI server, our pack in it, the shipped workflows over HTTP."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from scripts import make_workflows
from scripts.comfy_server import ComfyError
from scripts.workflow import load, ui_to_api
from zv_testing import tiny_prompt

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
GRAPHS = [make() for make in make_workflows.GRAPHS]
EXPECTED_FRAMES = {g.name: g.tiny_frames for g in GRAPHS}
TINY_SETS = {g.name: g.tiny_sets for g in GRAPHS}
BY_NAME = {g.name: g for g in GRAPHS}


def release(version: str) -> tuple[int, ...]:
    """"0.3.75" -> (0, 3, 75) (a suffix such as "-rc1" is dropped)."""
    return tuple(int(part) for part in version.split("-")[0].split(".")[:3])


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.run_workflow", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def mp4_facts(data: bytes, tmp_path: Path) -> dict:
    """Container, codec, decoded frames, fps, duration and audio of a saved video, read with PyAV."""
    import av
    path = tmp_path / "saved.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        return {"format": c.format.name, "codec": v.codec_context.name, "frames": frames,
                "fps": float(v.average_rate), "duration": float(v.duration * v.time_base),
                "audio": [a.codec_context.name for a in c.streams.audio], "metadata": dict(c.metadata)}


def test_every_node_is_listed_with_tooltips(object_info, node_ids):
    for node_id in node_ids:
        info = object_info[node_id]
        assert info["python_module"].startswith("custom_nodes."), info["python_module"]
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert all(info["output_tooltips"]), f"{node_id} has outputs without tooltips"
        assert info["category"].startswith("ZeroVideo")


def test_shipped_workflows_are_exactly_the_generated_ones(object_info, tmp_path):
    make_workflows.write_all(object_info, tmp_path)
    for path in sorted(tmp_path.rglob("*.json")):
        shipped = REPO / "workflows" / path.relative_to(tmp_path)
        assert shipped.is_file() and load(shipped) == load(path), f"{shipped} is stale: run host.py workflows"
    assert {p.stem for p in WORKFLOWS} == set(EXPECTED_FRAMES)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_ui_file_converts_to_its_api_twin(path, object_info):
    assert ui_to_api(load(path), object_info) == load(path.parent / "api" / path.name)


@pytest.mark.parametrize("name", sorted(EXPECTED_FRAMES))
def test_shipped_workflow_runs_over_http(name, client, object_info, host_facts, tmp_path):
    graph = BY_NAME[name]
    version = client.system_stats()["system"]["comfyui_version"]
    if graph.min_comfyui and release(version) < release(graph.min_comfyui):
        pytest.skip(f"{name} needs ComfyUI {graph.min_comfyui} or newer; this host is {version}")
    prompt = tiny_prompt(object_info, name, TINY_SETS[name])
    client.forget_cache()  # every node runs and reports, whichever workflow ran just before (random order)
    outputs = client.run(prompt)["outputs"]
    infos = [outputs[k]["text"][0] for k, n in prompt.items() if n["class_type"] == "ZeroVideo.LatentVideoInfo"]
    for text in infos:
        assert text.startswith(f"{EXPECTED_FRAMES[name]} frames"), text
        assert "NON-FINITE" not in text
    for k, n in prompt.items():  # long clips decode in windows of 16 frames sharing 4 (≥ 2 windows from 17 frames)
        if n["class_type"] == "ZeroVideo.TemporalTiledVAEDecode":
            frames = EXPECTED_FRAMES[name]
            windows = 1 if frames <= 16 else -(-(frames - 4) // 12)
            assert outputs[k]["text"] == [f"{frames} frames in {windows} window(s) of {min(16, frames)}"]
    saves = [k for k, n in prompt.items() if n["class_type"] == "SaveVideo"]
    assert saves and all(n["class_type"] != "SaveAnimatedWEBP" for n in prompt.values())
    for k in saves:
        item = outputs[k]["images"][0]
        assert item["filename"].endswith(".mp4") and item["subfolder"] == "ZeroVideo", item
        facts = mp4_facts(client.view(item), tmp_path)
        assert facts["format"].startswith("mov,mp4") and facts["codec"] == "h264", facts["format"]
        assert len(facts["frames"]) == graph.tiny_frames
        assert facts["fps"] == pytest.approx(graph.tiny_fps, abs=1e-3)
        assert facts["duration"] == pytest.approx(graph.tiny_frames / graph.tiny_fps, abs=1e-3)
        # the clip's audio is carried through exactly when the graph reads a clip
        assert facts["audio"] == (["aac"] if graph.audio else [])
        embedded = json.loads(facts["metadata"]["prompt"])  # Save Video embeds the graph it came from
        assert {k: (n["class_type"], n["inputs"]) for k, n in embedded.items()} == \
            {k: (n["class_type"], n["inputs"]) for k, n in prompt.items()}
        # random weights still give an image with some structure, not a constant (NaN decodes to black)
        assert facts["frames"][0].max() - facts["frames"][0].min() > 0
    host_facts.append(f"workflow {name} executed over HTTP: {EXPECTED_FRAMES[name]} frames"
                      f"{' (' + infos[0] + ')' if infos else ''}, saved as an h264 MP4 at {graph.tiny_fps:g} fps"
                      f"{' with the clip audio' if graph.audio else ''}")


def test_forget_cache_makes_every_node_of_the_next_prompt_run(client, object_info):
    """ZeroSmooth ×2 is the corrected branch of direct_vs_corrected, node for node: run right after it, ComfyUI
    reuses that branch's outputs and the branch's tiled decode (node 15) reports nothing (a CI failure in random
    order). forget_cache, which the workflow test calls first, makes it run."""
    x2 = tiny_prompt(object_info, "zerosmooth_svd_x2", TINY_SETS["zerosmooth_svd_x2"])
    both = tiny_prompt(object_info, "zerosmooth_direct_vs_corrected", TINY_SETS["zerosmooth_direct_vs_corrected"])
    assert both["15"]["class_type"] == "ZeroVideo.TemporalTiledVAEDecode"
    client.run(x2)
    assert "15" not in client.run(both)["outputs"]
    client.run(x2)
    client.forget_cache()
    assert client.run(both)["outputs"]["15"]["text"] == ["4 frames in 1 window(s) of 4"]


def test_cli_runs_a_ui_workflow_against_the_server(server, tmp_path):
    wf = REPO / "workflows" / "sd15_frames_baseline.json"
    r = cli(str(wf), "--server", server.url, "--tiny", "--out", str(tmp_path), "--frames", "--set", "KSampler.seed=11")
    assert r.returncode == 0, r.stderr
    assert "tiny random-weight models" in r.stderr
    assert "8 frames" in r.stderr
    assert len(list(tmp_path.glob("*_frame*.png"))) == 8
    assert len(list(tmp_path.glob("*.mp4"))) == 1
    assert "8 frames at 4 fps = 2.00 s, 64x64" in r.stderr  # what the CLI reports of each saved video


def test_bad_inputs_return_node_errors_and_the_server_keeps_serving(server, client, object_info, tmp_path):
    bad_steps = tiny_prompt(object_info, "sd15_frames_baseline", ["KSampler.steps=0"])
    status, body = client.queue(bad_steps)
    errors = json.dumps(body.get("node_errors"))
    assert body.get("node_errors") and "steps" in errors and "value_smaller_than_min" in errors

    bad_ckpt = tiny_prompt(object_info, "sd15_frames_baseline", ["1.ckpt_name=\"no_such_model.safetensors\""])
    with pytest.raises(ComfyError, match="no_such_model.safetensors"):
        client.run(bad_ckpt)

    api_file = tmp_path / "bad.json"
    api_file.write_text(json.dumps(bad_steps))
    r = cli(str(api_file), "--server", server.url, "--out", str(tmp_path))
    assert r.returncode == 1
    assert "error:" in r.stderr and "steps" in r.stderr and "Value 0 smaller than min" in r.stderr

    good = tiny_prompt(object_info, "sd15_frames_baseline", ["KSampler.seed=99"])
    assert client.run(good)["status"]["status_str"] == "success"


def test_node_help_pages_are_current_and_served(client, object_info, node_ids, tmp_path):
    from scripts import make_docs
    make_docs.write_all(object_info, tmp_path)
    for node_id in node_ids:
        shipped = REPO / "web" / "docs" / f"{node_id}.md"
        assert shipped.read_text() == (tmp_path / f"{node_id}.md").read_text(), f"{shipped} is stale: host.py docs"
        status, body = client.request(f"/extensions/ZeroVideo/docs/{node_id}.md")
        assert status == 200 and body.decode().startswith("# "), node_id


def test_every_workflow_has_a_template_thumbnail():
    for path in WORKFLOWS:
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file(), f"{thumb.name} missing: run the UI test, then scripts/make_thumbnails.py"
        assert Image.open(thumb).size[0] == 640


# every input that names a model file, with the models/ folder ComfyUI reads it from
MODEL_LOADERS = {"CheckpointLoaderSimple": (("ckpt_name",), "checkpoints"),
                 "ImageOnlyCheckpointLoader": (("ckpt_name",), "checkpoints"),
                 "ControlNetLoader": (("control_net_name",), "controlnet"),
                 "ZeroVideo.ExVideoTemporalExtend": (("extension",), "exvideo"),
                 "UNETLoader": (("unet_name",), "diffusion_models"),
                 "VAELoader": (("vae_name",), "vae"),
                 "DualCLIPLoader": (("clip_name1", "clip_name2"), "text_encoders"),
                 "TripleCLIPLoader": (("clip_name1", "clip_name2", "clip_name3"), "text_encoders")}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_every_model_a_workflow_loads_has_its_download_metadata(path, object_info):
    """The frontend's missing-models dialog offers a download for each entry of a node's properties.models."""
    ui = load(path)
    api = ui_to_api(ui, object_info)
    readme = (REPO / "README.md").read_text()
    checked = 0
    for node in ui["nodes"]:
        if node["type"] not in MODEL_LOADERS:
            continue
        keys, folder = MODEL_LOADERS[node["type"]]
        files = [api[str(node["id"])]["inputs"][key] for key in keys]
        if node["type"] == "ZeroVideo.ExVideoTemporalExtend" and api[str(node["id"])]["inputs"]["mode"] != "weights":
            assert "models" not in node["properties"]  # the training-free modes load no file
            continue
        entries = node["properties"].get("models", [])
        assert [(e["name"], e["directory"]) for e in entries] == [(f, folder) for f in files], (node["type"], entries)
        for entry, file in zip(entries, files):
            assert entry["url"].startswith("https://huggingface.co/") and entry["url"].endswith(".safetensors")
            assert f"`{file}`" in readme and f"`models/{folder}/`" in readme  # listed in the README's table
        checked += 1
    assert checked or path.stem == "exvideo_svd_training_free"


# inputs most users never touch: folded away by frontends that know "advanced"
EXPERT_INPUTS = {
    "ZeroVideo.CrossFrameAttentionPatch": {"start_percent", "end_percent", "videos"},
    "ZeroVideo.Text2VideoZeroSampler": {"t0", "t1", "interpolation"},
    "ZeroVideo.MotionLatentWarp": {"t0", "t1", "interpolation"},
    "ZeroVideo.TemporalMomentumAttention": {"anchor_mix", "start_percent", "end_percent", "videos"},
    "ZeroVideo.DependencyNoise": {"mode", "videos"},
    "ZeroVideo.DependencyNoiseModel": {"mode", "videos"},
    "ZeroVideo.SelfCascadeInterpolate": {"color_fix"},
    "ZeroVideo.HiddenStateCorrection": {"schedule"},
}


def full_size_frames(g) -> int:
    """Frames an SVD graph decodes at its full-size settings: the conditioning's video_frames, times the
    Self-Cascade factor where there is one (0 for graphs without SVD conditioning)."""
    frames = factor = 0
    for node in g.nodes.values():
        if node["class_type"] == "SVD_img2vid_Conditioning":
            frames = node["inputs"]["video_frames"]
        if node["class_type"] == "ZeroVideo.SelfCascadeInterpolate":
            factor = {"x2": 2, "x4": 4}[node["inputs"]["factor"]]
            if isinstance(node["inputs"].get("key_frames_video"), tuple):
                frames = node["inputs"]["key_frames"]
    return frames * (factor or 1)


@pytest.mark.parametrize("g", GRAPHS, ids=[g.name for g in GRAPHS])
def test_long_svd_clips_decode_in_temporal_tiles_and_say_why(g):
    decoders = [n["class_type"] for n in g.nodes.values() if "VAEDecode" in n["class_type"]]
    long_clip = full_size_frames(g) >= 50  # 50 frames of SVD at 576×1024 need ~49 GiB decoded at once
    assert decoders and set(decoders) == {"ZeroVideo.TemporalTiledVAEDecode" if long_clip else "VAEDecode"}
    assert (make_workflows.TILED_DECODE_NOTE in g.notes) == long_clip
    if long_clip:
        ui = load(REPO / "workflows" / f"{g.name}.json")
        assert any(n["type"] == "MarkdownNote" and n["widgets_values"] == [make_workflows.TILED_DECODE_NOTE]
                   for n in ui["nodes"])


def test_expert_inputs_and_only_they_are_marked_advanced(object_info, node_ids):
    for node_id in node_ids:
        inputs = object_info[node_id]["input"]
        marked = {name for section in ("required", "optional") for name, spec in inputs.get(section, {}).items()
                  if spec[1].get("advanced")}
        assert marked == EXPERT_INPUTS.get(node_id, set()), node_id
