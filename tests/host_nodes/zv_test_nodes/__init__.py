"""Test-only nodes linked into the test server's custom_nodes (never shipped: tests/ is in .comfyignore).

`ZVTest.ForceCondUncondSplit` makes ComfyUI take its own low-memory path, evaluating cond and uncond in
separate U-Net calls, the way it does on a GPU short of memory. Nothing is mocked: the model's memory
estimate is raised through an object patch on a clone, and ComfyUI's calc_cond_batch does the rest; an attn1
patch fails the prompt if a U-Net call ever carries cond and uncond together.

Tiny Flux and text encoders (scripts/tiny_models.py, "DiT workflows"): ComfyUI's loaders fix sizes a tiny model
cannot have (Flux: 24 heads of 128; T5-XXL and CLIP: fixed json configs). Files that carry a config under
`zerovideo_tiny_config` in their safetensors metadata get it handed to ComfyUI's own loading code here: a
diffusion model's `unet_config` to model detection, a text encoder's `<name>_model_config` to the
`model_options` its ComfyUI class reads. Every other file loads untouched, and everything that runs (loader
nodes, model classes, tokenizers, samplers) is ComfyUI's.
"""
import functools
import json

TINY_CONFIG_KEY = "zerovideo_tiny_config"  # scripts/tiny_models.py


class ForceCondUncondSplit:
    CATEGORY = "_for_testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    DESCRIPTION = "Test only: cond and uncond in separate model calls (ComfyUI's low-memory path)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "Any model."})}}

    def patch(self, model):
        m = model.clone()
        m.add_object_patch("memory_usage_factor", 1e12)

        def one_chunk_per_call(q, k, v, extra_options):
            # proof that the split happened: a call with cond and uncond together fails the prompt
            if len(extra_options["cond_or_uncond"]) != 1:
                raise RuntimeError(f"cond/uncond were not split: chunks {extra_options['cond_or_uncond']}")
            return q, k, v
        m.set_model_attn1_patch(one_chunk_per_call)
        return (m,)


NODE_CLASS_MAPPINGS = {"ZVTest.ForceCondUncondSplit": ForceCondUncondSplit}


def _tiny_config(path) -> dict | None:
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get(TINY_CONFIG_KEY)
    except Exception:  # not a safetensors file: not ours
        return None
    return json.loads(text) if text else None


def _install_tiny_config_loading():
    import comfy.model_detection
    import comfy.sd
    import comfy.text_encoders.long_clipl

    detect = comfy.model_detection.detect_unet_config
    loading: list = []  # the tiny config of the diffusion model being loaded (older ComfyUI passes no metadata on)

    @functools.wraps(detect)
    def detect_unet_config(state_dict, key_prefix, metadata=None, *args, **kwargs):
        text = (metadata or {}).get(TINY_CONFIG_KEY)
        config = json.loads(text) if text else (loading[-1] if loading else None)
        if config:
            return dict(config["unet_config"])
        return detect(state_dict, key_prefix, metadata, *args, **kwargs)

    load_diffusion_model = comfy.sd.load_diffusion_model

    @functools.wraps(load_diffusion_model)
    def load_diffusion_model_with_tiny_config(unet_path, *args, **kwargs):
        loading.append(_tiny_config(unet_path))
        try:
            return load_diffusion_model(unet_path, *args, **kwargs)
        finally:
            loading.pop()

    load_clip = comfy.sd.load_clip

    @functools.wraps(load_clip)
    def load_clip_with_tiny_configs(ckpt_paths, embedding_directory=None, clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
                                    model_options={}):
        tiny = {}
        for c in (_tiny_config(p) for p in ckpt_paths):
            tiny.update(c or {})
        if tiny:
            model_options = {**model_options, **tiny, TINY_CONFIG_KEY: tiny}
        return load_clip(ckpt_paths, embedding_directory=embedding_directory, clip_type=clip_type,
                         model_options=model_options)

    # ComfyUI sets "<clip name>_model_config" itself from a CLIP file's position embedding (long-CLIP support),
    # replacing what was there: the tiny config goes back on top of what it sets
    long_clip = comfy.text_encoders.long_clipl.model_options_long_clip

    @functools.wraps(long_clip)
    def model_options_long_clip(sd, tokenizer_data, model_options):
        tokenizer_data, out = long_clip(sd, tokenizer_data, model_options)
        tiny = model_options.get(TINY_CONFIG_KEY)
        if tiny:
            out = dict(out)
            for key, config in tiny.items():
                out[key] = {**out.get(key, {}), **config}
        return tokenizer_data, out

    comfy.model_detection.detect_unet_config = detect_unet_config
    comfy.sd.load_diffusion_model = load_diffusion_model_with_tiny_config
    comfy.sd.load_clip = load_clip_with_tiny_configs
    comfy.text_encoders.long_clipl.model_options_long_clip = model_options_long_clip


_install_tiny_config_loading()
