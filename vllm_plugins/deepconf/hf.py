"""DeepConf online early stop for ``transformers`` ``generate`` (any causal LM, e.g. Falcon-H1 on CPU).

A :class:`DeepConfLogitsProcessor` / :class:`DeepConfStoppingCriteria` pair over
the same torch core as the vLLM processor (:mod:`.early_stop`). transformers 5
runs custom logits processors before the sampling warpers (temperature, top-k/p),
so, as in vLLM, the confidence is computed from the unscaled logits.

Every row of the batch opts in (``generate`` has no per-request arguments). A row
stops being recorded once it has emitted EOS; a row forced to EOS is reported by
:attr:`DeepConfLogitsProcessor.stopped_early`, and the stopping criterion ends it
even when the forced id is not among ``generation_config.eos_token_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verl_falcon_plugin.requires import require
from vllm_plugins.deepconf.early_stop import ConfidenceStopState, torch
from vllm_plugins.deepconf.online import Trace
from vllm_plugins.deepconf.request_args import DeepConfArgs

transformers = require("transformers", "DeepConf for HF generate")


class DeepConfLogitsProcessor(transformers.LogitsProcessor):
    """Records each row's token confidences and forces EOS when its window mean drops below the threshold."""

    def __init__(self, args: DeepConfArgs, eos_token_id: int, prompt_length: int):
        self.args = args
        self.eos_token_id = eos_token_id
        self.prompt_length = prompt_length
        self.state: ConfidenceStopState | None = None
        self.confs: list[torch.Tensor] = []  # one [batch] tensor per step, NaN where not recorded
        self.done: torch.Tensor | None = None
        self.stopped_early: torch.Tensor | None = None

    def _start(self, batch: int, device: torch.device) -> None:
        self.state = ConfidenceStopState(
            batch, device, window_capacity=self.args.window, top_k_capacity=self.args.top_k
        )
        for row in range(batch):
            self.state.activate(row, self.args, self.eos_token_id)
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.stopped_early = torch.zeros(batch, dtype=torch.bool, device=device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        batch, index = input_ids.shape[0], input_ids.shape[1] - self.prompt_length
        if index < 0:
            raise ValueError(f"prompt_length={self.prompt_length} exceeds the input length {input_ids.shape[1]}")
        if self.state is None or index == 0:
            self._start(batch, scores.device)
        elif index > 0:
            self.done |= input_ids[:, -1] == self.eos_token_id
        rows = torch.arange(batch, device=scores.device)
        record = ~self.done
        scores = self.state.step(scores, rows, rows, torch.full_like(rows, index), record)
        self.confs.append(torch.where(record, self.state.last_step_conf, torch.nan))
        self.stopped_early |= self.state.last_step_stop
        return scores

    def trace_confidences(self) -> list[np.ndarray]:
        """Per row: the confidences of its generated tokens (EOS included)."""
        stacked = torch.stack(self.confs, dim=1).cpu().numpy() if self.confs else np.zeros((0, 0))
        return [row[~np.isnan(row)] for row in stacked]


class DeepConfStoppingCriteria(transformers.StoppingCriteria):
    """Ends the rows that the paired processor forced to EOS."""

    def __init__(self, processor: DeepConfLogitsProcessor):
        self.processor = processor

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.processor.stopped_early is None:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return self.processor.stopped_early & (input_ids[:, -1] == self.processor.eos_token_id)


@dataclass
class HFTraceGenerator:
    """A :class:`~.online.TraceGenerator` over ``model.generate`` for one prompt."""

    model: object
    tokenizer: object
    prompt: str
    max_new_tokens: int
    top_k: int = 20
    temperature: float = 0.6
    top_p: float = 0.95

    def generate(self, num_traces: int, threshold: float | None, window: int) -> list[Trace]:
        from vllm_plugins.deepconf.answers import extract_answer

        enc = self.tokenizer([self.prompt] * num_traces, return_tensors="pt")
        eos = self.tokenizer.eos_token_id
        args = DeepConfArgs(float("-inf") if threshold is None else threshold, window, self.top_k)
        proc = DeepConfLogitsProcessor(args, eos, enc["input_ids"].shape[1])
        out = self.model.generate(
            **enc,
            do_sample=True,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            logits_processor=transformers.LogitsProcessorList([proc]),
            stopping_criteria=transformers.StoppingCriteriaList([DeepConfStoppingCriteria(proc)]),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        stopped = proc.stopped_early.cpu().tolist()
        return [
            Trace(confs, None if stop else extract_answer(text), bool(stop), text)
            for confs, stop, text in zip(proc.trace_confidences(), stopped, texts)
        ]
