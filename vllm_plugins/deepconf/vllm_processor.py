"""``DeepConfLogitsProcessor``: DeepConf online early stop inside vLLM.

Loaded into every engine by the ``vllm.logits_processors`` entry point (never pass
it in ``LLM(logits_processors=[...])`` as well: it would run twice). One class
implements both of vLLM 0.32's interfaces, because the Model-Runner-V2 loader
rejects classes that implement only V1 and the V1 runner constructs V1 ones:

* **V1** (``vllm.v1.sample.logits_processor.LogitsProcessor``): constructed as
  ``(vllm_config, device, is_pin_memory)``; ``update_state(BatchUpdate)`` tracks the
  persistent batch (removed, added, moved), and ``apply(logits)`` sees one row per
  persistent-batch index. A request's position is ``len(output_token_ids)``,
  read from the runner's live list, so a chunked-prefill row (whose token is
  discarded) records at the same index as the request's first real step and is
  overwritten by it.
* **V2** (``vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor``):
  constructed as ``(vllm_config, req_states)``; ``add_request(slot, params)`` fully
  re-initialises a (possibly reused) slot, and ``apply(logits, ctx)`` maps rows to
  slots with ``ctx.idx_mapping``. Positions come from the device: a row records when
  ``pos + 1 >= prefill_len`` (the last prefill chunk or a decode step) at index
  ``pos + 1 - prefill_len_at_admission``, so nothing is read back to the host; rows
  are selected on the host from ``ctx.idx_mapping_np`` and a host mirror of the
  opted-in slots.

On both, a request resumed after preemption restarts its window from the resume
point (the confidences of the tokens generated before it are gone with the old
slot), which can only delay a stop, never cause a spurious one.

Requests opt in with flat ``SamplingParams.extra_args`` (see :mod:`.request_args`);
all others are untouched, and when no request in the batch opted in ``apply``
returns at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from verl_falcon_plugin.requires import require
from vllm_plugins.deepconf.early_stop import ConfidenceStopState, torch
from vllm_plugins.deepconf.request_args import DeepConfArgs, parse_extra_args

require("vllm", "the DeepConf vLLM logits processor")
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality  # noqa: E402
from vllm.v1.sample.logits_processor import LogitsProcessor as V1LogitsProcessor  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import (  # noqa: E402
    LogitsContext,
    LogitsProcRequestState,
)
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2LogitsProcessor  # noqa: E402

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

logger = logging.getLogger(__name__)


def _eos_token_id(params: SamplingParams, vllm_config: VllmConfig) -> int:
    if params.eos_token_id is not None:
        return int(params.eos_token_id)
    eos = getattr(vllm_config.model_config.hf_config, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    if eos is None:
        raise ValueError("DeepConf forces EOS to stop a trace, but neither the request nor the model defines one")
    return int(eos)


class DeepConfLogitsProcessor(V1LogitsProcessor, V2LogitsProcessor):
    """Stops opted-in requests once their sliding-window confidence drops below their threshold."""

    def __init__(self, vllm_config: VllmConfig, device_or_req_states: Any, is_pin_memory: bool | None = None):
        self.vllm_config = vllm_config
        self.spec_decoding = vllm_config.speculative_config is not None
        if isinstance(device_or_req_states, LogitsProcRequestState):
            self.req_states: LogitsProcRequestState | None = device_or_req_states
            device, num_slots = device_or_req_states.device, device_or_req_states.max_num_reqs
        else:
            self.req_states = None
            device, num_slots = device_or_req_states, vllm_config.scheduler_config.max_num_seqs
        self.state = ConfidenceStopState(num_slots, device)
        # V1: live output-token lists and the output length at admission, per batch index
        self._outputs: dict[int, list[int]] = {}
        self._base_host: dict[int, int] = {}
        # V2: output length at admission, taken on device at the slot's first recorded row
        self._base = torch.zeros(num_slots, dtype=torch.long, device=self.state.device)
        self._fresh = torch.zeros(num_slots, dtype=torch.bool, device=self.state.device)

    # ---- shared ---------------------------------------------------------------------------
    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        parse_extra_args(sampling_params.extra_args, ignore_eos=sampling_params.ignore_eos)

    def is_argmax_invariant(self) -> bool:
        return False  # it forces EOS, which changes greedy decoding too

    def _admit(self, slot: int, params: SamplingParams) -> DeepConfArgs | None:
        args = parse_extra_args(params.extra_args, ignore_eos=params.ignore_eos)
        if args is None:
            self.state.deactivate(slot)
            return None
        if self.spec_decoding:
            raise NotImplementedError("DeepConf early stop with speculative decoding (several rows per request)")
        self.state.activate(slot, args, _eos_token_id(params, self.vllm_config))
        return args

    # ---- V1 --------------------------------------------------------------------------------
    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._forget_v1(index)
        for index, params, _prompt, output_ids in batch_update.added:
            self._forget_v1(index)
            if self._admit(index, params) is not None:
                self._outputs[index] = output_ids
                self._base_host[index] = len(output_ids)
        for a, b, direction in batch_update.moved:
            if direction == MoveDirectionality.SWAP:
                self.state.swap(a, b)
                for d in (self._outputs, self._base_host):
                    va, vb = d.pop(a, None), d.pop(b, None)
                    if va is not None:
                        d[b] = va
                    if vb is not None:
                        d[a] = vb
            else:
                self._forget_v1(b)
                self.state.move(a, b)
                for d in (self._outputs, self._base_host):
                    if a in d:
                        d[b] = d.pop(a)

    def _forget_v1(self, index: int) -> None:
        self.state.deactivate(index)
        self._outputs.pop(index, None)
        self._base_host.pop(index, None)

    def _apply_v1(self, logits: torch.Tensor) -> torch.Tensor:
        rows = sorted(i for i in self._outputs if i < logits.shape[0])
        if not rows:
            return logits
        index = [len(self._outputs[i]) - self._base_host[i] for i in rows]
        device = logits.device
        rows_t = torch.tensor(rows, dtype=torch.long).to(device, non_blocking=True)
        index_t = torch.tensor(index, dtype=torch.long).to(device, non_blocking=True)
        return self.state.step(logits, rows_t, rows_t, index_t)

    # ---- V2 --------------------------------------------------------------------------------
    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        if self._admit(req_idx, sampling_params) is None:
            return False
        self._fresh[req_idx] = True
        return True

    def _apply_v2(self, logits: torch.Tensor, ctx: LogitsContext) -> torch.Tensor:
        active = np.asarray(self.state.active_host, dtype=bool)[ctx.idx_mapping_np]
        if not active.any():
            return logits
        if logits.shape[0] != len(ctx.idx_mapping_np):
            raise NotImplementedError("DeepConf early stop with speculative decoding (several rows per request)")
        device = logits.device
        rows = torch.from_numpy(np.nonzero(active)[0]).to(device, non_blocking=True)
        slots = ctx.idx_mapping[rows].long()
        after = ctx.pos[rows].long() + 1  # the sequence position of the token this row samples
        prompt_len = self.req_states.prompt_len.gpu[slots].long()
        prefill_len = self.req_states.prefill_len.gpu[slots].long()
        record = after >= prefill_len
        first = self._fresh[slots] & record
        self._base[slots] = torch.where(first, prefill_len - prompt_len, self._base[slots])
        self._fresh[slots] = self._fresh[slots] & ~record
        index = after - prompt_len - self._base[slots]
        return self.state.step(logits, rows, slots, index, record)

    def apply(self, logits: torch.Tensor, ctx: LogitsContext | None = None) -> torch.Tensor:
        if ctx is None:
            return self._apply_v1(logits)
        return self._apply_v2(logits, ctx)
