import pytest


@pytest.fixture(scope="session")
def transfer_queue():
    """TransferQueue on a private Ray cluster, started once for every verl-path sampler test."""
    pytest.importorskip("transfer_queue", reason="verl's v1 trainer needs TransferQueue (verl[verl-core])")
    from verl_falcon_plugin.testing.verl_rollout import transfer_queue_session

    with transfer_queue_session() as tq:
        yield tq


@pytest.fixture
def verl_v1(transfer_queue):
    import verl.trainer.ppo.v1.trainer_base as trainer_base

    from verl_falcon_plugin.testing.verl_rollout import clear_partitions

    clear_partitions()
    yield trainer_base
    clear_partitions()


@pytest.fixture(scope="session")
def plugin_config():
    """verl's config composed once with ``+plugin=falcon_h1r``, as ``main_ppo`` builds it."""
    pytest.importorskip("verl")
    from tests.sampling.verl_path import BATCH, G
    from verl_falcon_plugin.plugin_config import compose_ppo_config

    return compose_ppo_config(
        ["+plugin=falcon_h1r", f"data.train_batch_size={BATCH}", f"actor_rollout_ref.rollout.n={G}"]
    )
