"""ExVideo post-tuning CLI (training/exvideo_posttune.py) on tiny SVD models and synthetic 8-frame videos.

Most tests use the Python-level tiny SVD (64 channels) with a tiny TAESD and a tiny CLIP vision, passed to
the training entry point; one test runs the command line on the tiny SVD *checkpoint file*.
"""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from zv_testing import gen, sample, svd_conds

FRAMES, SIZE, SEED = 8, 64, 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny models gain nothing from threads, and on 2 cores shared with other test runs OpenMP
    spin-waiting makes them 10-30× slower: run this module single-threaded, then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pt(pack):
    from training import exvideo_posttune
    return exvideo_posttune


@pytest.fixture(scope="module")
def X(pack):
    from zerovideo.kernels import exvideo
    return exvideo


@pytest.fixture(scope="module")
def node(pack):
    from zerovideo.nodes import exvideo
    return exvideo


def write_mp4(path, frames=FRAMES, width=96, height=64):
    """A synthetic clip (a square moving over a gradient) encoded with PyAV; wider than tall on purpose."""
    import av
    import numpy as np
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(frames):
            img = np.tile(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
            img[16:40, 8 + 6 * k:32 + 6 * k] = (250, 240, 120)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from scripts.run_workflow import write_sample_video
    d = tmp_path_factory.mktemp("videos")
    write_sample_video(d / "square.webp", frames=FRAMES, size=SIZE)  # animated WEBP (PIL)
    (d / "sub").mkdir()
    write_mp4(d / "sub" / "square.mp4")  # mp4 (PyAV), in a subfolder: the folder is searched recursively
    write_sample_video(d / "short.webp", frames=4, size=SIZE)  # too short for 8 frames: skipped
    return d


@pytest.fixture(scope="module")
def base(comfy, tmp_path_factory):
    """The tiny SVD (built once), a tiny TAESD and a tiny CLIP vision."""
    import comfy.sd
    from scripts import tiny_models
    return (tiny_models.tiny_svd(seed=SEED), comfy.sd.VAE(sd=tiny_models._taesd_sd(4)),
            tiny_models.tiny_clip_vision(tmp_path_factory.mktemp("clip_vision")))


def fresh_svd(base):
    """A copy of the tiny SVD with its own weights (a tuner changes the U-Net it is given)."""
    from scripts import tiny_models
    return tiny_models.patcher(copy.deepcopy(base[0].model))


def fresh_models(pt, base):
    return pt.Models(fresh_svd(base), base[1], base[2], "tiny-svd")


def argv(videos, out, *extra):
    return ["--checkpoint", "in-memory.safetensors", "--videos", str(videos), "--out", str(out),
            "--frames", str(FRAMES), "--size", str(SIZE), "--device", "cpu", "--precision", "fp32", *extra]


def in_temporal_blocks(X, key: str) -> bool:
    return any(key.startswith(f"diffusion_model.{path}.time_pos_embed.") or
               key.startswith(f"diffusion_model.{path}.time_stack.") for path in X.BLOCK_MAP.values())


@pytest.fixture(scope="module")
def trained(pt, base, videos, tmp_path_factory):
    """Two training steps (checkpoint after each) on fresh tiny models: (result, U-Net state before)."""
    tmp = tmp_path_factory.mktemp("trained")
    models = fresh_models(pt, base)
    before = {k: v.detach().clone() for k, v in models.model.model.state_dict().items()}
    args = pt.build_parser().parse_args(argv(videos, tmp / "ext.safetensors", "--steps", "2", "--checkpoint-every",
                                             "1", "--grad-checkpointing", "--seed", "7"))
    return pt.run(args, models), before


@pytest.mark.parametrize("module", ["training.exvideo_posttune", "scripts.exvideo_posttune"])
def test_help_runs_without_comfyui(module):
    """The trainer's home is training/; its earlier name in scripts/ still runs it, and says where it went."""
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                         cwd=str(Path(__file__).resolve().parents[2]), timeout=120)
    assert out.returncode == 0 and "--grad-checkpointing" in out.stdout and "--resume" in out.stdout
    assert "usage: python -m training.exvideo_posttune" in out.stdout
    moved = "the trainer moved to training/exvideo_posttune.py; next time run `python -m training.exvideo_posttune`"
    assert (moved in out.stderr) == module.startswith("scripts."), out.stderr


def test_videos_decode_with_pyav_and_pil_and_short_ones_are_skipped(pt, videos):
    logs = []
    data = pt.VideoFolder(videos, FRAMES, SIZE, log=logs.append)
    assert sorted(p.name for p, _ in data.videos) == ["square.mp4", "square.webp"]
    assert all(n == FRAMES for _, n in data.videos) and "short.webp (4 frames)" in logs[0]
    for path, _ in data.videos:
        clip = pt.read_clip(path, 0, FRAMES, SIZE)
        assert clip.shape == (FRAMES, SIZE, SIZE, 3) and clip.dtype == torch.uint8
        assert (clip[-1].float() - clip[0].float()).abs().mean() > 1  # the square moves
    with pytest.raises(pt.ShortVideo):
        pt.read_clip(videos / "short.webp", 0, FRAMES, SIZE)


def test_recipe_pieces(pt):
    assert pt.karras_sigma(0.0) == pytest.approx(700.0) and pt.karras_sigma(1.0) == pytest.approx(0.002)
    assert pt.loss_weight(1.0) == pytest.approx(2 ** 0.5)
    still = torch.full((8, 4, 4, 3), 0.5)
    assert pt.motion_bucket(still) == 0 and pt.motion_bucket(still, "sqrt") == 1
    flicker = torch.zeros(8, 4, 4, 3)
    flicker[::2] = 1.0
    assert pt.motion_bucket(flicker) == 127 and pt.motion_bucket(flicker, "sqrt") == 127
    assert 1 < pt.motion_bucket(still + 0.05 * torch.randn(8, 4, 4, 3, generator=gen(0))) < 127


def released_bucket(pt, score):
    """The released training's rule, as its description gives it: the first bucket whose next threshold is above
    the score; past the last threshold, the last bucket."""
    for i in range(len(pt.MOTION_THRESHOLDS) - 1):
        if pt.MOTION_THRESHOLDS[i + 1] > score:
            return i
    return len(pt.MOTION_THRESHOLDS) - 1


def test_motion_buckets_follow_the_released_threshold_table(pt):
    table = pt.MOTION_THRESHOLDS
    assert len(table) == 128 and list(table) == sorted(table) and table[0] == 0.0
    assert table[9] == 0.029968588 and table[127] == 0.440871328  # spot checks against the published figures
    assert pt.bucket_of_score(0.03) == 9 and pt.bucket_of_score(0.03, "sqrt") == 33
    scores = [0.0, 0.005, 0.44, 0.4409, 0.45, 2.0, *table, *[(a + b) / 2 for a, b in zip(table, table[1:])]]
    assert [pt.bucket_of_score(s) for s in scores] == [released_bucket(pt, s) for s in scores]
    # a clip whose every pixel alternates by ±d around grey over 8 frames: temporal std (pixels in [-1, 1],
    # unbiased) d·sqrt(8/7); d chosen for std 0.03 → bucket 9 (the sqrt rule gave 33)
    d = 0.03 * (7 / 8) ** 0.5
    clip = torch.full((8, 4, 4, 3), 0.5)
    clip[0::2] += d / 2
    clip[1::2] -= d / 2
    assert pt.motion_score(clip) == pytest.approx(0.03, rel=1e-5)
    assert pt.motion_bucket(clip) == 9 and pt.motion_bucket(clip, "sqrt") == 33
    with pytest.raises(ValueError, match="unknown motion mapping 'cube'; choose one of table, sqrt"):
        pt.bucket_of_score(0.1, "cube")


def test_initial_extension_reproduces_the_stock_model(pt, base):
    models = fresh_models(pt, base)
    ext = pt.initial_extension(models.model, 16)
    cond = pt.Condition(None, torch.randn(1, 4, 4, 4, generator=gen(1)), torch.randn(1, 1, 64, generator=gen(2)),
                        models.model.model.encode_adm(fps=30, motion_bucket_id=90, augmentation_level=0.02), 90)
    x = 5.0 * torch.randn(FRAMES, 4, 4, 4, generator=gen(3))
    with torch.no_grad():
        stock = models.model.model.apply_model(
            x, torch.full((FRAMES,), 5.0), c_concat=cond.concat.repeat(FRAMES, 1, 1, 1),
            c_crossattn=cond.context.repeat(FRAMES, 1, 1), y=cond.y.repeat(FRAMES, 1), num_video_frames=FRAMES)
        tuner = pt.PostTuner(models, ext)
        assert tuner.rows == 16
        torch.testing.assert_close(tuner.denoise(x, 5.0, cond), stock, rtol=0, atol=1e-5)


def test_training_forward_is_the_nodes_forward(pt, node, base):
    """D(x; σ) of the tuner equals one Euler step of the ExVideo node's model with the same tensors."""
    import comfy.sample
    import comfy.samplers
    from scripts import tiny_models
    models = fresh_models(pt, base)
    ext = tiny_models.exvideo_extension(models.model, 16, seed=1, perturb=0.05)  # non-identity conv and table
    tuner = pt.PostTuner(models, ext)
    bucket, sigma = 60, 10.0
    cond = pt.Condition(None, torch.randn(1, 4, 8, 8, generator=gen(1)), torch.randn(1, 1, 64, generator=gen(2)),
                        models.model.model.encode_adm(fps=30, motion_bucket_id=bucket, augmentation_level=0.02), bucket)
    noise = torch.randn(FRAMES, 4, 8, 8, generator=gen(3))
    with torch.no_grad():
        ours = tuner.denoise(sigma * noise, sigma, cond)
    m = node.apply_extension(fresh_svd(base), tuner.extension_state_dict())
    positive = [[cond.context, {"concat_latent_image": cond.concat, "fps": 30, "motion_bucket_id": bucket,
                                "augmentation_level": 0.02}]]
    out = comfy.sample.sample_custom(m, noise, 1.0, comfy.samplers.sampler_object("euler"), torch.tensor([sigma, 0.0]),
                                     positive, positive, torch.zeros_like(noise), disable_pbar=True, seed=0)
    # one Euler step from σ to 0 returns D(x; σ), in the sampler's output scale (latents / 0.18215)
    torch.testing.assert_close(m.model.process_latent_in(out), ours, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        stock = base[0].model.apply_model(
            sigma * noise, torch.full((FRAMES,), sigma), c_concat=cond.concat.repeat(FRAMES, 1, 1, 1),
            c_crossattn=cond.context.repeat(FRAMES, 1, 1), y=cond.y.repeat(FRAMES, 1), num_video_frames=FRAMES)
    assert (stock - ours).abs().max() > 1e-3  # the perturbed table/Conv3d do change the result


def test_two_steps_change_only_the_temporal_blocks(trained, X):
    result, before = trained
    assert result.step == 2
    model = result.tuner.model
    after = model.state_dict()
    assert set(after) == set(before)
    changed = [k for k in before if not torch.equal(before[k], after[k].to(before[k].dtype))]
    assert changed, "training changed nothing"
    outside = [k for k in changed if not in_temporal_blocks(X, k)]
    assert not outside, f"frozen weights changed: {outside[:5]}"
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 480 and all(in_temporal_blocks(X, n) for n in trainable)
    assert all(p.grad is None for p in model.parameters())
    # the new tensors moved too: the Conv3d is no longer the identity
    sd = result.tuner.extension_state_dict()
    assert not torch.equal(sd["blocks.7." + X.CONV_WEIGHT], X.identity_conv_weight(64))


def test_written_file_has_the_released_layout_and_the_node_samples_with_it(trained, X, node, comfy, base):
    import safetensors
    import safetensors.torch
    result, _ = trained
    sd = safetensors.torch.load_file(str(result.out))
    keymap = X.exvideo_keymap()
    assert len(sd) == 528 and set(sd) == set(keymap)
    assert all(v.dtype == torch.float16 for v in sd.values())
    assert X.detect_frames(sd) == FRAMES and sd["blocks.195." + X.CONV_WEIGHT].shape == (64, 64, 3, 3, 3)
    with safetensors.safe_open(str(result.out), "pt") as f:
        meta = f.metadata()
    assert meta["steps"] == "2" and meta["ema_updates"] == "2"
    svd = fresh_svd(base)
    m = node.apply_extension(svd, sd, result.out.name)
    pos, neg = svd_conds(svd, 8, 8)
    out = sample(m, torch.randn(FRAMES, 4, 8, 8, generator=gen(4)), pos, neg, steps=1, cfg=2.0)
    assert out.shape == (FRAMES, 4, 8, 8) and torch.isfinite(out).all()


def test_state_is_written_atomically_and_resume_continues_the_same_run(trained, pt, videos, base):
    import safetensors.torch
    result, _ = trained
    state = result.state_dir
    assert (state / "latest").read_text().strip() == "step-0000002"
    assert sorted(d.name for d in state.iterdir()) == ["latest", "step-0000001", "step-0000002"]
    assert not list(state.glob(".*")) and not list(result.out.parent.glob(".*tmp*"))
    info = json.loads((state / "step-0000002" / "state.json").read_text())
    assert info["step"] == 2 and info["ema_updates"] == 2
    # one more step from the saved state, on freshly loaded models
    out = result.out.with_name("resumed.safetensors")
    resumed = pt.run(pt.build_parser().parse_args(argv(videos, out, "--steps", "3", "--checkpoint-every", "1",
                                                       "--resume", str(state), "--seed", "7")),
                     fresh_models(pt, base))
    assert resumed.step == 3
    assert (state / "latest").read_text().strip() == "step-0000003"
    assert sorted(d.name for d in state.glob("step-*")) == ["step-0000002", "step-0000003"]  # newest two kept
    info = json.loads((state / "step-0000003" / "state.json").read_text())
    assert info["step"] == 3 and info["ema_updates"] == 3
    w2 = safetensors.torch.load_file(str(state / "step-0000002" / "weights.safetensors"))
    w3 = safetensors.torch.load_file(str(state / "step-0000003" / "weights.safetensors"))
    assert any(not torch.equal(w2[k], w3[k]) for k in w2)
    # resuming at the target step does nothing
    again = pt.run(pt.build_parser().parse_args(argv(videos, out, "--steps", "3", "--resume", str(state))),
                   fresh_models(pt, base))
    assert again.step == 3 and (state / "latest").read_text().strip() == "step-0000003"
    # 2 steps + resume + 1 step is the same run as 3 steps straight (weights, optimizer, RNG, EMA restored)
    straight = pt.run(pt.build_parser().parse_args(argv(videos, out.with_name("straight.safetensors"), "--steps", "3",
                                                        "--checkpoint-every", "1", "--grad-checkpointing", "--seed",
                                                        "7")), fresh_models(pt, base))
    for name in ("weights.safetensors", "ema.safetensors"):
        a = safetensors.torch.load_file(str(state / "step-0000003" / name))
        b = safetensors.torch.load_file(str(straight.state_dir / "step-0000003" / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step(pt, X, base, videos, precision):
    """Autocast (and fp16's GradScaler) on the CPU: a finite loss, the fp32 master weights move."""
    tuner = pt.PostTuner(fresh_models(pt, base), pt.initial_extension(base[0], FRAMES), precision=precision, lr=1e-3)
    g = torch.Generator().manual_seed(0)
    clip = pt.VideoFolder(videos, FRAMES, SIZE, log=lambda m: None).sample(g)
    if tuner.scaler is not None:  # start lower than the default 2**16: fewer skipped steps on the CPU
        tuner.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    before = tuner.extension_state_dict()
    for _ in range(12):  # fp16: the GradScaler skips steps (halving its scale) until the gradients fit
        stats = tuner.train_step([(clip, g)])
        assert torch.isfinite(torch.tensor(stats["loss"]))
        if not stats["skipped"]:
            break
    assert not stats["skipped"] and (precision == "fp16") == (tuner.scaler is not None)
    after = tuner.extension_state_dict()
    assert all(p.dtype == torch.float32 for p in tuner.params.values())
    assert not torch.equal(before["blocks.83.ff_out.weight"], after["blocks.83.ff_out.weight"])


def test_cli_on_the_tiny_svd_checkpoint_file(pt, X, tiny_checkpoints, videos, tmp_path, capsys):
    """The command line on a real .safetensors SVD checkpoint (ComfyUI's loader, the 320-channel 16-block U-Net):
    set up the trainable extension and write it. `--steps 0`: one step of this model costs ~5-8 s on the CPU, plus
    ~5 s for the ViT-H CLIP vision and ~7 s to write its 1.9 GB training state; the steps themselves are tested on
    the Python-level tiny SVD above (same code, same 16-block layout)."""
    import safetensors.torch
    from scripts.tiny_models import SVD_NAME
    out = tmp_path / "tiny_exvideo.safetensors"
    rc = pt.main(["--checkpoint", str(tiny_checkpoints[SVD_NAME]), "--videos", str(videos), "--out", str(out),
                  "--frames", str(FRAMES), "--size", str(SIZE), "--steps", "0", "--device", "cpu",
                  "--precision", "fp32", "--ema", "0"])
    assert rc == 0, capsys.readouterr().err
    sd = safetensors.torch.load_file(str(out))
    assert set(sd) == set(X.exvideo_keymap())
    assert sd["blocks.83." + X.TABLE].shape == (FRAMES, 320) and sd["blocks.83." + X.CONV_BIAS].shape == (320,)
    # the untrained extension: the checkpoint's own temporal weights, ping-pong sinusoid table, identity Conv3d
    torch.testing.assert_close(sd["blocks.7." + X.TABLE], X.sinusoid(X.pingpong_ids(FRAMES), 320).half())
    torch.testing.assert_close(sd["blocks.7." + X.CONV_WEIGHT], X.identity_conv_weight(320).half())
    state = json.loads((tmp_path / "tiny_exvideo.state" / "step-0000000" / "state.json").read_text())
    assert state["step"] == 0 and state["base"] == SVD_NAME


def test_bad_inputs_are_clear_errors(pt, videos, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pt.main(argv(videos, tmp_path / "x.safetensors", "--size", "100"))
    assert "multiple of 64" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no video in .* has 64 frames"):
        pt.VideoFolder(videos, 64, SIZE, log=lambda m: None)
    with pytest.raises(ValueError, match="pickle"):
        pt.load_models(tmp_path / "model.ckpt")


def test_init_file_is_the_starting_point(pt, X, base, videos, tmp_path):
    import safetensors.torch
    from scripts import tiny_models
    init = tiny_models.exvideo_extension(base[0], 16, seed=2, perturb=0.01)
    safetensors.torch.save_file({k: v.half().contiguous() for k, v in init.items()}, str(tmp_path / "init.safetensors"))
    out = tmp_path / "from_init.safetensors"
    result = pt.run(pt.build_parser().parse_args(argv(videos, out, "--init", str(tmp_path / "init.safetensors"),
                                                      "--steps", "0")), fresh_models(pt, base))
    assert result.tuner.rows == 16
    sd = safetensors.torch.load_file(str(out))
    assert all(torch.equal(sd[k], init[k].half()) for k in init)
    short = {k: (v[:4] if k.endswith(X.TABLE) else v) for k, v in init.items()}
    safetensors.torch.save_file({k: v.contiguous() for k, v in short.items()}, str(tmp_path / "short.safetensors"))
    with pytest.raises(ValueError, match="holds 4 frames, fewer than --frames 8"):
        pt.run(pt.build_parser().parse_args(argv(videos, tmp_path / "x.safetensors", "--init",
                                                 str(tmp_path / "short.safetensors"))), fresh_models(pt, base))


def test_the_motion_mapping_flag_reaches_the_tuner(pt):
    args = pt.build_parser().parse_args(["--checkpoint", "svd.safetensors", "--videos", "clips",
                                         "--out", "ext.safetensors"])
    assert args.motion_mapping == "table"  # the released recipe by default
    args = pt.build_parser().parse_args(["--checkpoint", "svd.safetensors", "--videos", "clips",
                                         "--out", "ext.safetensors", "--motion-mapping", "sqrt"])
    assert args.motion_mapping == "sqrt"


def test_the_tuner_conditions_on_the_bucket_of_its_motion_mapping(pt, base):
    """The conditioning of a clip carries the table's bucket by default, the sqrt rule's with that mapping."""
    from scripts import tiny_models
    d = 0.03 * (7 / 8) ** 0.5  # temporal std 0.03 (see the table test): bucket 9, or 33 by the sqrt rule
    pixels = torch.full((FRAMES, 64, 64, 3), 0.5)
    pixels[0::2] += d / 2
    pixels[1::2] -= d / 2
    clip = pt.Clip(Path("clip.mp4"), 0, pixels)
    for mapping, bucket in (("table", 9), ("sqrt", 33)):
        models = fresh_models(pt, base)
        tuner = pt.PostTuner(models, tiny_models.exvideo_extension(models.model, 16, seed=1), motion_mapping=mapping)
        cond = tuner.condition(clip, torch.Generator().manual_seed(0))
        assert cond.bucket == bucket
        assert torch.equal(cond.y, models.model.model.encode_adm(fps=30, motion_bucket_id=bucket,
                                                                 augmentation_level=0.0).float())


def test_the_condition_frame_is_clean_by_default_and_noised_with_augmentation(pt, base):
    """Released recipe: the first frame's latent of the clean frame, augmentation_level 0; --augmentation A adds
    pixel noise × A (seeded) and passes A on."""
    from scripts import tiny_models
    pixels = torch.rand(FRAMES, 64, 64, 3, generator=gen(4))
    clip = pt.Clip(Path("clip.mp4"), 0, pixels)
    models = fresh_models(pt, base)
    args = pt.build_parser().parse_args(["--checkpoint", "a.safetensors", "--videos", "v", "--out", "o.safetensors"])
    assert args.augmentation == 0.0
    tuner = pt.PostTuner(models, tiny_models.exvideo_extension(models.model, 16, seed=1))
    cond = tuner.condition(clip, torch.Generator().manual_seed(0))
    assert torch.equal(cond.concat, models.vae.encode(pixels[:1]).float())
    assert torch.equal(cond.y, models.model.model.encode_adm(fps=30, motion_bucket_id=cond.bucket,
                                                             augmentation_level=0.0).float())
    noisy = pt.PostTuner(fresh_models(pt, base), tiny_models.exvideo_extension(models.model, 16, seed=1),
                         augmentation=0.02)
    cond = noisy.condition(clip, torch.Generator().manual_seed(0))
    first = pixels[:1] + torch.randn(pixels[:1].shape, generator=torch.Generator().manual_seed(0)) * 0.02
    assert torch.equal(cond.concat, models.vae.encode(first).float())
    assert torch.equal(cond.y, models.model.model.encode_adm(fps=30, motion_bucket_id=cond.bucket,
                                                             augmentation_level=0.02).float())


@pytest.mark.parametrize("flag", [None, 0.18215])
def test_the_training_target_is_the_vae_latent_at_the_latent_scale(pt, base, flag):
    """Released recipe: x0 = VAE latent × 0.13025 (DiffSynth's SVD VAE encoder), target 1.01·x0, the condition
    frame's latent unscaled; `--latent-scale 0.18215` trains in ComfyUI's SVD latent units instead. The loss is
    the formula written out here on the tuner's own denoiser."""
    from scripts import tiny_models
    scale = 0.13025 if flag is None else flag
    args = pt.build_parser().parse_args(["--checkpoint", "a.safetensors", "--videos", "v", "--out", "o.safetensors",
                                         *([] if flag is None else ["--latent-scale", str(flag)])])
    assert args.latent_scale == scale
    pixels = torch.rand(FRAMES, 64, 64, 3, generator=gen(6))
    models = fresh_models(pt, base)
    tuner = pt.PostTuner(models, tiny_models.exvideo_extension(models.model, 16, seed=1),
                         latent_scale=args.latent_scale)
    cond = tuner.condition(pt.Clip(Path("clip.mp4"), 0, pixels), torch.Generator().manual_seed(0))
    raw = models.vae.encode(pixels).float()
    assert torch.equal(cond.latents, raw * scale)
    assert torch.equal(cond.concat, models.vae.encode(pixels[:1]).float())
    sigma, noise = 1.7, torch.randn(raw.shape, generator=gen(7))
    with torch.no_grad():
        loss, mse = tuner.loss(cond, sigma, noise)
        d = tuner.denoise(raw * scale + sigma * noise, sigma, cond)
    expected = ((d - 1.01 * scale * raw) ** 2).mean()
    torch.testing.assert_close(mse, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(loss, expected * (1 + sigma ** 2) ** 0.5 / sigma, rtol=1e-6, atol=0)


def test_resuming_with_another_latent_scale_is_refused(trained, pt, videos, base, tmp_path):
    result, _ = trained
    state = tmp_path / "state"
    import shutil
    shutil.copytree(result.state_dir, state)
    with pytest.raises(ValueError, match=r"trained with --latent-scale 0.13025; resume with the same"):
        pt.run(pt.build_parser().parse_args(argv(videos, tmp_path / "x.safetensors", "--steps", "3", "--resume",
                                                 str(state), "--latent-scale", "0.18215")), fresh_models(pt, base))
