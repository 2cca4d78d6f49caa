"""``patch_falcon_h1``: packed sequences and Ulysses SP for transformers' Falcon-H1.

What is patched is the ``forward`` of four module types of
``transformers.models.falcon_h1.modeling_falcon_h1`` — ``FalconH1Model``,
``FalconH1DecoderLayer``, ``FalconH1Mixer`` and ``FalconH1Attention`` — and nothing
else: no module is rebuilt or replaced, so ``state_dict`` keys and shapes stay HF's
(``mup_vector`` stays a non-persistent buffer) and module swaps by other patches
(Liger's RMSNorm, SwiGLU, RoPE, gated norm, fused linear CE) compose in either order.

Each patched forward dispatches: a training-style call (no cache, no padding mask,
``position_ids`` given — what verl's remove-padding path sends) takes the packed
path; any other call (generation, KV cache, padded batches) runs HF's forward
unchanged. Given a model, the patch binds to its module instances and falls back
to whatever the class's ``forward`` is at call time; given a class (or the
modeling module), it patches the classes, for every model built afterwards too.

Boundaries come from ``position_ids`` alone (a sequence starts where its position
is 0), which is all verl's FSDP engine passes for this model: it adds ``cu_seqlens``
only when the top-level ``forward`` declares that parameter, and Falcon-H1's does
not. With ``sdpa``/``eager``, transformers' ``FalconH1Model.forward`` still builds
its own (unused) causal mask for the local tokens before the layers run; use
``flash_attention_2`` on GPU, where no mask is built.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any, Callable

from verl_falcon_plugin.models.falcon_h1.serving import vllm_serving_mismatches
from verl_falcon_plugin.requires import require

logger = logging.getLogger(__name__)

_MARK = "_falcon_h1r_patched"
_OPTIONS = "_falcon_h1r_options"
_ORIGINAL = "_falcon_h1r_original_forward"
_TARGETS = ("FalconH1Model", "FalconH1DecoderLayer", "FalconH1Mixer", "FalconH1Attention")


def _modeling_module(model_or_class: Any) -> types.ModuleType:
    if isinstance(model_or_class, types.ModuleType):
        return model_or_class
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        if module is not None and all(hasattr(module, name) for name in _TARGETS):
            return module
    raise TypeError(
        f"patch_falcon_h1 needs a Falcon-H1 model, one of its classes or its modeling module; "
        f"got {cls.__module__}.{cls.__qualname__}"
    )


def _options(module: Any) -> dict[str, bool]:
    return getattr(module, _OPTIONS, None) or getattr(type(module), _OPTIONS, None) or {"ulysses": True}


def _unpatched(module: Any) -> Callable[..., Any]:
    """The forward to fall back on: the class's original when we patched the class, else its current one."""
    cls = type(module)
    return getattr(cls, _ORIGINAL, None) or cls.forward


def _model_forward(self, *args, **kwargs):
    from verl_falcon_plugin.models.falcon_h1 import ulysses

    group = ulysses.sequence_parallel_group()
    sp_size = ulysses.group_size(group)
    if sp_size > 1:
        if not _options(self)["ulysses"]:
            raise RuntimeError(
                f"a sequence-parallel group of size {sp_size} is active but Falcon-H1 was patched with "
                "ulysses=False: call patch_falcon_h1(model, ulysses=True)"
            )
        if kwargs.get("position_ids") is None or kwargs.get("past_key_values") is not None:
            raise ValueError(
                "Falcon-H1 under Ulysses sequence parallelism needs position_ids of the packed sequence "
                "(verl's ulysses_pad_and_slice_inputs gives them) and no past_key_values"
            )
        if kwargs.get("attention_mask") is not None:
            raise ValueError(
                "Falcon-H1 under Ulysses sequence parallelism takes packed inputs without attention_mask "
                "(verl: use_remove_padding=True)"
            )
        from verl_falcon_plugin.models.falcon_h1.ulysses import check_divisible

        config = self.config
        check_divisible(
            sp_size=sp_size,
            attention_heads=config.num_attention_heads,
            key_value_heads=config.num_key_value_heads,
            ssm_heads=config.mamba_n_heads,
        )
    return _unpatched(self)(self, *args, **kwargs)


def _layer_forward(
    self,
    hidden_states,
    attention_mask=None,
    mamba_attention_mask=None,
    position_ids=None,
    past_key_values=None,
    use_cache=False,
    position_embeddings=None,
    **kwargs,
):
    from verl_falcon_plugin.models.falcon_h1 import layer

    if layer.is_packed_call(position_ids, past_key_values, mamba_attention_mask, position_embeddings):
        return layer.packed_layer_forward(
            self, hidden_states, position_ids=position_ids, position_embeddings=position_embeddings
        )
    return _unpatched(self)(
        self,
        hidden_states,
        attention_mask=attention_mask,
        mamba_attention_mask=mamba_attention_mask,
        position_ids=position_ids,
        past_key_values=past_key_values,
        use_cache=use_cache,
        position_embeddings=position_embeddings,
        **kwargs,
    )


def _mixer_forward(self, hidden_states, *args, packed=None, **kwargs):
    if packed is None:
        return _unpatched(self)(self, hidden_states, *args, **kwargs)
    from verl_falcon_plugin.models.falcon_h1.mixer import packed_mixer_forward

    return packed_mixer_forward(self, hidden_states, _sp_checked(self, packed))


def _attention_forward(self, *args, packed=None, **kwargs):
    if packed is None:
        return _unpatched(self)(self, *args, **kwargs)
    from verl_falcon_plugin.models.falcon_h1.attention import packed_attention_forward

    output = packed_attention_forward(
        self, kwargs["hidden_states"], kwargs["position_embeddings"], _sp_checked(self, packed)
    )
    return output, None


def _sp_checked(module: Any, packed: Any) -> Any:
    if packed.sp_size > 1 and not _options(module)["ulysses"]:
        raise RuntimeError(
            f"a sequence-parallel group of size {packed.sp_size} is active but Falcon-H1 was patched with "
            "ulysses=False: call patch_falcon_h1(model, ulysses=True)"
        )
    return packed


_FORWARDS: dict[str, Callable[..., Any]] = {
    "FalconH1Model": _model_forward,
    "FalconH1DecoderLayer": _layer_forward,
    "FalconH1Mixer": _mixer_forward,
    "FalconH1Attention": _attention_forward,
}
for _forward in _FORWARDS.values():
    setattr(_forward, _MARK, True)


def _patch_classes(modeling: types.ModuleType, options: dict[str, bool]) -> list[str]:
    patched = []
    for name, forward in _FORWARDS.items():
        cls = getattr(modeling, name)
        if not getattr(cls.forward, _MARK, False):
            setattr(cls, _ORIGINAL, cls.forward)
            cls.forward = forward
        setattr(cls, _OPTIONS, dict(options))
        patched.append(f"{modeling.__name__}.{name}.forward")
    return patched


def _patch_instances(model: Any, modeling: types.ModuleType, options: dict[str, bool]) -> list[str]:
    counts = dict.fromkeys(_FORWARDS, 0)
    classes = {name: getattr(modeling, name) for name in _FORWARDS}
    for module in model.modules():
        for name, cls in classes.items():
            if isinstance(module, cls):
                module.forward = types.MethodType(_FORWARDS[name], module)
                setattr(module, _OPTIONS, dict(options))
                counts[name] += 1
    if not counts["FalconH1Mixer"]:
        raise TypeError(f"{type(model).__qualname__} contains no FalconH1Mixer: nothing to patch")
    return [f"{type(model).__qualname__}: {count} x {name}.forward" for name, count in counts.items() if count]


def patch_falcon_h1(model_or_class: Any, *, packed: bool = True, ulysses: bool = True) -> list[str]:
    """Make Falcon-H1 correct on packed (padding-free) inputs and under Ulysses sequence parallelism.

    ``model_or_class``: a Falcon-H1 model (patch its modules), a Falcon-H1 class or the
    modeling module (patch the classes). ``packed``: keep packed sequences apart in
    the conv, the SSD scan and attention. ``ulysses``: also run head-parallel over the
    SP group (verl's Ulysses group, or :func:`set_sequence_parallel_group`); with
    ``ulysses=False`` a forward under an active SP group raises instead of being wrong.
    Idempotent. Returns what it patched.
    """
    require("transformers", "patch_falcon_h1")
    if not packed:
        if ulysses:
            raise ValueError("patch_falcon_h1(ulysses=True) needs packed=True: SP runs on the packed path")
        return []
    modeling = _modeling_module(model_or_class)
    options = {"ulysses": ulysses}
    if isinstance(model_or_class, (type, types.ModuleType)):
        return _patch_classes(modeling, options)
    for mismatch in vllm_serving_mismatches(model_or_class.config):
        logger.warning("Falcon-H1 config served differently by vLLM: %s", mismatch)
    return _patch_instances(model_or_class, modeling, options)


def unpatch_falcon_h1(model_or_class: Any) -> None:
    """Undo :func:`patch_falcon_h1` on a model's modules or on the classes."""
    modeling = _modeling_module(model_or_class)
    if isinstance(model_or_class, (type, types.ModuleType)):
        for name in _FORWARDS:
            cls = getattr(modeling, name)
            original = cls.__dict__.get(_ORIGINAL)
            if original is not None:
                cls.forward = original
                delattr(cls, _ORIGINAL)
            if _OPTIONS in cls.__dict__:
                delattr(cls, _OPTIONS)
        return
    for module in model_or_class.modules():
        if getattr(module.__dict__.get("forward"), _MARK, False):
            del module.forward
            module.__dict__.pop(_OPTIONS, None)
