"""Training code runs in Ray workers: the plugin must be active there after a bare `import verl`."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@ray.remote(num_cpus=0)
class VerlWorker:
    def activation(self) -> dict:
        import verl  # noqa: F401  (the worker does nothing else, as in a verl worker process)

        from verl_falcon_plugin.activation import ACTIVATION, INSTALLERS

        return {"done": ACTIVATION.done, "installed": list(ACTIVATION.installed), "installers": len(INSTALLERS)}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_plugin_is_active_in_a_ray_worker(local_ray) -> None:
    report = ray.get(VerlWorker.remote().activation.remote())
    assert report["done"] is True
    assert len(report["installed"]) >= report["installers"]


def test_ray_worker_with_plugin_discovery_off_is_not_activated(local_ray) -> None:
    """Negative control: the worker's activation comes from verl's entry-point loading."""
    worker = VerlWorker.options(runtime_env={"env_vars": {"VERL_USE_EXTERNAL_PLUGINS": "none"}}).remote()
    assert ray.get(worker.activation.remote())["done"] is False
