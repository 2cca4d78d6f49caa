"""``make demo``: the paper's whole pipeline at toy scale on CPU (task -> SFT -> RL data -> GRPO -> eval ->
DeepConf -> report), through the entry points the recipes use on GPUs. Run it with
``python -m verl_falcon_plugin.demo`` or ``falcon-h1r demo``; see :mod:`.stages`."""

from verl_falcon_plugin.lazy import lazy_exports

_LAZY = {
    "DemoConfig": ".config",
    "PRESETS": ".config",
    "STAGES": ".stages",
    "run_demo": ".__main__:run_demo",
}
__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
