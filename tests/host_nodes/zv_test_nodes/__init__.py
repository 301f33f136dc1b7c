"""Test-only nodes linked into the test server's custom_nodes (never shipped: tests/ is in .comfyignore).

`ZVTest.ForceCondUncondSplit` makes ComfyUI take its own low-memory path, evaluating cond and uncond in
separate U-Net calls, the way it does on a GPU short of memory. Nothing is mocked: the model's memory
estimate is raised through an object patch on a clone, and ComfyUI's calc_cond_batch does the rest; an attn1
patch fails the prompt if a U-Net call ever carries cond and uncond together.
"""


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
