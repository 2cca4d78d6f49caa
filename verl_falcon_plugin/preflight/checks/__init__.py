"""One module per area; each registers its checks with ``@register_check``.

Every module in this package is imported by ``discover_checks``. A check must be
cheap (a tiny model, seconds), print the measured error with its tolerance, and
return SKIP with a reason when its framework is not installed.
"""
