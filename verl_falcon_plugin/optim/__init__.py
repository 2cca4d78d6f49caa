"""Learning-rate schedules verl's FSDP optimizer lacks (paper Sec. 2: "linear, 4% warmup")."""

from verl_falcon_plugin.lazy import lazy_exports

_LAZY = {
    "LINEAR": ".linear_schedule",
    "get_linear_schedule_with_warmup": ".linear_schedule",
    "linear_lr_ratio": ".linear_schedule",
    "install_linear_schedule": ".verl_hook:install",
}
__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
