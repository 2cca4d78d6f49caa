"""The HF CPU rollout server's per-token log-probs are what verl's trainer recomputes.

Reference: an unpatched HF forward over prompt + response, ``log_softmax(logits / T)`` at each
response token (verl's ``logprobs_from_logits`` on temperature-scaled logits). Control: the raw
(unscaled) log-probs differ, so the check would catch a server that forgot the temperature.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from verl_falcon_plugin.cpu.rollout.server import HFRolloutServer, _generation_kwargs  # noqa: E402
from verl_falcon_plugin.testing.tiny_falcon_h1 import VLLM_SERVABLE_GEOMETRY, tiny_falcon_h1  # noqa: E402

TEMPERATURE = 0.85
TOL = 1e-5


def server_for(model) -> HFRolloutServer:
    server = object.__new__(HFRolloutServer)  # skip __init__: no model dir, no verl config needed
    server.model, server._eos, server._pad = model, [2], 0
    return server


def test_log_probs_equal_the_temperature_scaled_forward() -> None:
    torch.manual_seed(0)
    model = tiny_falcon_h1(VLLM_SERVABLE_GEOMETRY, seed=3)
    prompt = [5, 17, 33, 8, 91]
    kwargs, temperature = _generation_kwargs({"temperature": TEMPERATURE, "top_p": 1.0, "top_k": -1})
    tokens, log_probs = server_for(model)._sample(prompt, 12, kwargs, temperature)
    assert len(tokens) == len(log_probs) >= 1

    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1].float()
    target = torch.tensor(tokens)[:, None]
    reference = torch.log_softmax(logits / TEMPERATURE, dim=-1).gather(-1, target)[:, 0]
    unscaled = torch.log_softmax(logits, dim=-1).gather(-1, target)[:, 0]
    error = (torch.tensor(log_probs) - reference).abs().max().item()
    assert error < TOL, error
    assert (torch.tensor(log_probs) - unscaled).abs().max().item() > 100 * TOL  # the control differs


def test_greedy_and_disabled_top_k_map_to_hf_generate() -> None:
    greedy, temperature = _generation_kwargs({"temperature": 0, "top_p": 1.0, "top_k": -1})
    assert greedy["do_sample"] is False and temperature == 1.0
    sampled, _ = _generation_kwargs({"temperature": 0.7, "top_k": -1})
    assert sampled["top_k"] == 0  # HF: 0 disables top-k; None would mean its default of 50
