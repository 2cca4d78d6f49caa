"""Round-robin over sandbox endpoints: one shared cycle, fail-over, cool-down; then against real servers."""

from __future__ import annotations

import collections
import concurrent.futures
import threading

import pytest

from tests.rewards.sandbox_helpers import dead_endpoint, sandbox_servers, slot_uids, surviving_processes
from verl_falcon_plugin.rewards.code import code_reward
from verl_falcon_plugin.rewards.code.endpoints import AllEndpointsDown, EndpointDown, EndpointPool, shared_pool
from verl_falcon_plugin.rewards.result import RewardStatus

URLS = ["http://a:1", "http://b:2", "http://c:3"]


def test_one_shared_cycle_spreads_calls_from_many_threads_evenly():
    pool = EndpointPool(URLS)
    seen: list[str] = []
    lock = threading.Lock()

    def record(endpoint: str) -> str:
        with lock:
            seen.append(endpoint)
        return endpoint

    with concurrent.futures.ThreadPoolExecutor(16) as executor:
        list(executor.map(lambda _: pool.call(record), range(300)))
    assert collections.Counter(seen) == {u: 100 for u in URLS}


def test_a_down_endpoint_is_skipped_and_the_call_retried_elsewhere():
    pool = EndpointPool(URLS, cooldown_s=60)

    def flaky(endpoint: str) -> str:
        if endpoint == "http://b:2":
            raise EndpointDown("connection refused")
        return endpoint

    answered = [pool.call(flaky)[0] for _ in range(30)]
    assert "http://b:2" not in answered and len(answered) == 30
    assert pool.stats["http://b:2"].failures == 1  # cooling down: not tried again within the cool-down
    assert collections.Counter(answered) == {"http://a:1": 15, "http://c:3": 15}


def test_when_every_endpoint_is_down_the_error_names_each():
    pool = EndpointPool(URLS)

    def down(endpoint: str):
        raise EndpointDown(f"{endpoint} refused")

    with pytest.raises(AllEndpointsDown) as err:
        pool.call(down)
    assert set(err.value.errors) == set(URLS)
    assert "http://c:3 refused" in str(err.value)


def test_other_errors_are_not_fail_over():
    pool = EndpointPool(URLS)
    with pytest.raises(ZeroDivisionError):
        pool.call(lambda endpoint: 1 / 0)


def test_pools_are_shared_per_endpoint_list_and_urls_validated():
    assert shared_pool(["http://x:1/", "http://y:2"]) is shared_pool(["http://x:1", "http://y:2"])
    with pytest.raises(ValueError, match="list of URLs"):
        shared_pool("http://x:1")
    with pytest.raises(ValueError, match="http"):
        EndpointPool(["localhost:8080"])


@pytest.mark.slow
def test_round_robin_against_real_servers_spreads_load_and_survives_one_down():
    """Two embedded sandboxes plus a dead endpoint: every reward is computed, the load splits evenly
    between the live ones, and the dead one is skipped after its first failure."""
    with sandbox_servers(2, workers=2) as servers:
        dead = dead_endpoint()
        pool = EndpointPool([servers[0].url, dead, servers[1].url], cooldown_s=60)
        response = "```python\nprint(int(input()) + 1)\n```"
        tests = {"inputs": [str(i) for i in range(3)], "outputs": [str(i + 1) for i in range(3)]}
        with concurrent.futures.ThreadPoolExecutor(8) as executor:
            results = list(
                executor.map(lambda _: code_reward(response, tests, endpoints=pool, concurrency=2), range(8))
            )
        assert all(r.status is RewardStatus.CORRECT for r in results), [r.metadata for r in results]
        served = [s.requests_served for s in servers]
        assert sum(served) == 24 and min(served) >= 8, served
        assert 1 <= pool.stats[dead].failures <= 2  # skipped while cooling down
        assert not surviving_processes(slot_uids(servers))
