"""``RewardLoopManager.compute_rm_score`` on per-sample extra infos whose keys differ; prints JSON.

Run with ``PYTHONPATH`` at a copy of verl (patched or not) and ``VERL_USE_EXTERNAL_PLUGINS=none``. verl's own
method runs on a stand-in manager: one reward-loop "worker" whose ``compute_score_batch.remote`` returns the
outputs directly, and ``ray.get`` as the identity (the Ray transport is not what is tested).
"""

from __future__ import annotations

import json
import types

import torch
import verl
from verl.experimental.reward_loop import reward_loop
from verl.protocol import DataProto

CASES = {
    # a key that only later samples have (e.g. an error message only when the sandbox failed)
    "later_sample_has_more_keys": [{"acc": 1.0}, {"acc": 0.0, "error": "timeout"}, {"acc": 1.0}],
    # a key that the first sample has and a later one lacks
    "first_sample_has_more_keys": [{"acc": 1.0, "error": "timeout"}, {"acc": 0.0}, {"acc": 1.0}],
}


def run(infos: list[dict]) -> dict:
    outputs = [{"reward_score": info["acc"], "reward_extra_info": info} for info in infos]
    worker = types.SimpleNamespace(compute_score_batch=types.SimpleNamespace(remote=lambda chunk: outputs))
    manager = types.SimpleNamespace(
        reward_model_manager=None,
        reward_loop_workers=[worker],
        reward_manager_cls=types.SimpleNamespace(assemble_rm_scores=lambda data, scores: torch.tensor(scores)[:, None]),
    )
    data = DataProto.from_dict(tensors={"responses": torch.zeros(len(infos), 1)})
    try:
        result = reward_loop.RewardLoopManager.compute_rm_score(manager, data)
    except Exception as error:  # reported, not hidden: the test asserts on it
        return {"error": f"{type(error).__name__}: {error}"}
    return {
        "reward_extra_keys": result.meta_info["reward_extra_keys"],
        "columns": {key: list(value.tolist()) for key, value in result.non_tensor_batch.items()},
    }


def main() -> None:
    reward_loop.ray = types.SimpleNamespace(get=lambda refs: refs)
    print(json.dumps({"verl": verl.__file__, **{name: run(infos) for name, infos in CASES.items()}}))


if __name__ == "__main__":
    main()
