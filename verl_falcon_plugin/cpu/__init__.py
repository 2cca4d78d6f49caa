"""verl's real trainers on a machine without a GPU (``VERL_PLATFORM=cpu``): for smoke runs and CI.

* :mod:`.platform`: verl's ``cpu`` platform (``PlatformRegistry``).
* :mod:`.engines`: verl's FSDP engines registered for device ``cpu``.
* :mod:`.gloo`: the gloo backend for verl's process groups.
* :mod:`.rollout`: an HF ``transformers`` rollout server (rollout ``name: hf``).
* :mod:`.activation`: what activation installs, and when.

Nothing here is imported unless ``VERL_PLATFORM=cpu``. Select everything with
``+plugin=falcon_h1r_cpu`` (see the README).
"""
