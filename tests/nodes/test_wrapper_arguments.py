"""Our ComfyUI wrappers find the arguments they read by name (issue 13): diffusion models differ in where they
take `transformer_options` (a U-Net's `_forward` 6th, Flux's 8th), and callers may pass any of them by keyword."""
import functools
import inspect
import threading

import pytest
import torch


def executor_with_signature_of(fn, wrappers, seen):
    """A real WrapperExecutor around a recorder that takes its arguments as `fn` (a ComfyUI method) does."""
    import comfy.patcher_extension

    def original(*args, **kwargs):
        bound = inspect.signature(original).bind(*args, **kwargs)
        seen.append(dict(bound.arguments))
        return "out"
    original.__signature__ = inspect.signature(functools.partial(fn, None))
    return comfy.patcher_extension.WrapperExecutor.new_executor(original, wrappers)


@pytest.mark.parametrize("model", ["UNetModel", "Flux"])
@pytest.mark.parametrize("by_keyword", [False, True])
def test_call_counter_finds_transformer_options_by_name(pack, model, by_keyword):
    import comfy.ldm.flux.model
    import comfy.ldm.modules.diffusionmodules.openaimodel as unet
    from zerovideo.nodes import _patching
    fn = {"UNetModel": unet.UNetModel._forward, "Flux": comfy.ldm.flux.model.Flux._forward}[model]
    seen, options = [], {"patches": {}}
    names = list(inspect.signature(functools.partial(fn, None)).parameters)
    position = names.index("transformer_options")
    args = [torch.zeros(1)] + [None] * (position - 1)
    executor = executor_with_signature_of(fn, [_patching._count_calls], seen)
    if by_keyword:
        assert executor.execute(*args, transformer_options=options) == "out"
    else:
        assert executor.execute(*args, options) == "out"
    # the wrapped call saw the counter in its transformer_options, which the wrapper removes afterwards
    assert seen[0]["transformer_options"] is options and _patching.CALLS_KEY not in options


def test_dependency_noise_rewrites_the_noise_where_the_caller_put_it(pack):
    import comfy.samplers
    from zerovideo.nodes.zs2 import DependencyNoiseSampling
    wrapper = DependencyNoiseSampling(1.0, "closed_form", 1, per_step=False)
    noise = torch.randn(4, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    for keyword in (False, True):
        seen = []
        ex = executor_with_signature_of(comfy.samplers.KSAMPLER.sample, [wrapper], seen)
        head = [None, torch.ones(3), {"seed": 5}, None]
        ex.execute(*head, noise=noise) if keyword else ex.execute(*head, noise)
        out = seen[0]["noise"]
        assert out.shape == noise.shape and not torch.equal(out, noise)
        # frames 1.. now lean on their predecessor: neighbour correlation ≈ α* ≈ 0.5 for λ = 1, iid ≈ 0
        a, b = out[1:].flatten(1), out[:-1].flatten(1)
        assert float(torch.nn.functional.cosine_similarity(a, b).mean()) > 0.2


def test_a_wrapped_call_without_the_argument_is_named(pack):
    from zerovideo.nodes import _patching
    ex = executor_with_signature_of(lambda self, x: x, [_patching._count_calls], [])
    with pytest.raises(TypeError, match=r"^ZeroVideo: the wrapped call <function .*original at 0x[0-9a-f]+> has no "
                                        r"argument 'transformer_options'$"):
        ex.execute(torch.zeros(1))


def test_an_argument_left_out_by_the_caller_reads_as_its_default(pack):
    """The caller passed fewer positional arguments than the argument's position (it relies on the default): the
    wrapper reads the default, not past the end of the arguments."""
    from zerovideo.nodes import _patching
    got = []

    def wrapper(executor, *args, **kwargs):
        got.append(_patching.argument(executor, args, kwargs, "transformer_options", "default"))
        return executor(*args, **kwargs)
    ex = executor_with_signature_of(lambda self, x, transformer_options=None: x, [wrapper], [])
    ex.execute(torch.zeros(1))
    assert got == ["default"]


def test_an_argument_the_function_takes_only_by_keyword_is_set_by_keyword(pack):
    """A wrapped function that takes the argument only through **kwargs (no position): the wrapper sets it as a
    keyword, and the function receives it."""
    from zerovideo.nodes import _patching
    seen = []

    def wrapper(executor, *args, **kwargs):
        args, kwargs = _patching.with_argument(executor, args, kwargs, "transformer_options", {"set": True})
        return executor(*args, **kwargs)
    ex = executor_with_signature_of(lambda self, x, **kwargs: x, [wrapper], seen)
    ex.execute(torch.zeros(1))
    assert seen[0]["kwargs"] == {"transformer_options": {"set": True}}


def test_frame_counts_are_per_thread(pack):
    """Each device of a multi-GPU step runs in its own thread and sets the frame count of its own call."""
    from zerovideo.nodes._patching import VideoFrames
    holder = VideoFrames()
    holder.frames = 16
    seen = []

    def other():
        seen.append(holder.frames)
        holder.frames = 8
        seen.append(holder.frames)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [None, 8] and holder.frames == 16
