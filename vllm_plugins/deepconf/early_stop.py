"""The batched DeepConf early stop on logits, in torch: the core shared by the
vLLM processor (both model-runner interfaces) and the HF ``generate`` processor.

State lives on the logits' device, one row per request slot: a ring buffer of the
last ``window`` token confidences, the request's threshold, window, top-k and EOS
id. One :meth:`ConfidenceStopState.step` per decoding step, for the rows of the
opted-in requests only, with no host synchronisation:

* the confidence of the token about to be sampled is ``-mean(top-k log_softmax(logits))``,
  computed from the logits the sampler is about to use (raw logits in vLLM, where
  the returned ``logprobs`` are also computed from the raw logits);
* it is written at ``index % window`` in the slot's ring (``index`` = how many
  confidences the slot has recorded before this one; a row that repeats an index,
  as a chunked-prefill row whose token is discarded does, overwrites its entry);
* once ``index + 1 >= window`` and the ring's mean is below the threshold, the
  row is forced to EOS: every logit ``-inf`` except the EOS logit, set to ``0``
  (finite whatever earlier processors did to it, so the row is never all ``-inf``
  and softmax never gives NaN). The stopped trace thus ends with EOS *at* the
  first token whose window mean is below the threshold; that token's confidence,
  as returned by vLLM's logprobs, is the one that triggered the stop.
"""

from __future__ import annotations

from verl_falcon_plugin.requires import require
from vllm_plugins.deepconf.confidence import DEFAULT_TOP_K, DEFAULT_WINDOW
from vllm_plugins.deepconf.request_args import DeepConfArgs

torch = require("torch", "the DeepConf logits processors")


class ConfidenceStopState:
    """Per-slot DeepConf state on ``device`` for up to ``num_slots`` concurrent requests."""

    def __init__(
        self,
        num_slots: int,
        device: torch.device | str,
        window_capacity: int = DEFAULT_WINDOW,
        top_k_capacity: int = DEFAULT_TOP_K,
    ) -> None:
        self.num_slots = num_slots
        self.device = torch.device(device)
        self.top_k_capacity = top_k_capacity
        kw = dict(device=self.device)
        self.threshold = torch.zeros(num_slots, dtype=torch.float32, **kw)
        self.window = torch.ones(num_slots, dtype=torch.long, **kw)
        self.top_k = torch.ones(num_slots, dtype=torch.long, **kw)
        self.eos = torch.zeros(num_slots, dtype=torch.long, **kw)
        self.ring = torch.zeros(num_slots, window_capacity, dtype=torch.float32, **kw)
        # running sum of each ring, float64: O(1) per step instead of O(window), no visible drift at 64K tokens
        self.ring_sum = torch.zeros(num_slots, dtype=torch.float64, **kw)
        #: the latest recorded token confidence per slot (read by the tests and the runner's plots)
        self.last_conf = torch.zeros(num_slots, dtype=torch.float32, **kw)
        #: host mirror of which slots opted in: lets callers skip work without a device sync
        self.active_host = [False] * num_slots
        #: per row of the latest step: its confidence and whether it was forced to EOS
        self.last_step_conf: torch.Tensor | None = None
        self.last_step_stop: torch.Tensor | None = None

    def activate(self, slot: int, args: DeepConfArgs, eos_token_id: int) -> None:
        """(Re)initialise ``slot`` for a new request; all of a previous occupant's state is cleared."""
        if args.window > self.ring.shape[1]:
            grow = torch.zeros(self.num_slots, args.window - self.ring.shape[1], device=self.device)
            self.ring = torch.cat([self.ring, grow], dim=1)
        self.top_k_capacity = max(self.top_k_capacity, args.top_k)
        self.threshold[slot] = args.threshold
        self.window[slot] = args.window
        self.top_k[slot] = args.top_k
        self.eos[slot] = eos_token_id
        self.ring[slot].zero_()
        self.ring_sum[slot] = 0.0
        self.last_conf[slot] = 0.0
        self.active_host[slot] = True

    def deactivate(self, slot: int) -> None:
        self.active_host[slot] = False

    def move(self, src: int, dst: int) -> None:
        """Slot ``src``'s request now lives in ``dst`` (``src`` becomes free)."""
        for t in (self.threshold, self.window, self.top_k, self.eos, self.ring, self.ring_sum, self.last_conf):
            t[dst] = t[src]
        self.active_host[dst] = self.active_host[src]
        self.active_host[src] = False

    def swap(self, a: int, b: int) -> None:
        idx, rev = torch.tensor([a, b], device=self.device), torch.tensor([b, a], device=self.device)
        for t in (self.threshold, self.window, self.top_k, self.eos, self.ring, self.ring_sum, self.last_conf):
            t[idx] = t[rev]
        self.active_host[a], self.active_host[b] = self.active_host[b], self.active_host[a]

    def token_confidence(self, logits: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """``-mean`` of each row's top-``k`` log-probs (``k`` per slot), in float32.

        log_softmax is monotone, so the top-k of the logits minus the logsumexp are the
        top-k log-probs: two reading passes over the vocabulary, no [rows, vocab] write.
        """
        logits = logits.float()
        k_max = min(self.top_k_capacity, logits.shape[-1])
        top = logits.topk(k_max, dim=-1).values - torch.logsumexp(logits, dim=-1, keepdim=True)
        k = self.top_k[slots]
        # tokens an earlier stage masked to -inf (fewer than k allowed, e.g. under a grammar) are left
        # out of the mean: one -inf would make the confidence, and the ring's running sum, infinite for good
        valid = (torch.arange(k_max, device=logits.device)[None, :] < k[:, None]) & torch.isfinite(top)
        total = torch.where(valid, top, torch.zeros_like(top)).sum(-1)
        return -total / valid.sum(-1).clamp(min=1)

    def step(
        self,
        logits: torch.Tensor,
        rows: torch.Tensor,
        slots: torch.Tensor,
        index: torch.Tensor,
        record: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Record this step's confidences for ``rows`` (owned by ``slots``) and force EOS where due.

        ``rows`` ascending and unique (so all rows means ``arange``: no gather needed);
        ``index[i]``: how many confidences ``slots[i]`` recorded before this step;
        ``record[i]`` False: the row's token will not be kept (a partial prefill), skip it.
        Modifies ``logits`` in place and returns it.
        """
        if rows.numel() == 0:
            return logits
        if record is None:
            record = torch.ones_like(rows, dtype=torch.bool)
        every_row = rows.numel() == logits.shape[0]  # a host fact: skips the gather when all rows opted in
        selected = logits if every_row else logits[rows]
        conf = self.token_confidence(selected, slots)
        window = self.window[slots]
        pos = index % window
        old = self.ring[slots, pos]
        new = torch.where(record, conf, old)
        self.ring[slots, pos] = new
        self.ring_sum[slots] += (new - old).double()
        self.last_conf[slots] = torch.where(record, conf, self.last_conf[slots])
        filled = torch.minimum(index + 1, window).clamp(min=1)
        mean = self.ring_sum[slots] / filled
        stop = record & (index + 1 >= window) & (mean < self.threshold[slots])
        self._force_eos(logits, rows, slots, stop, every_row)
        self.last_step_conf, self.last_step_stop = conf, stop
        return logits

    def _force_eos(
        self, logits: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor, stop: torch.Tensor, every_row: bool
    ) -> None:
        """Every logit of a stopped row ``-inf`` but EOS, which is set to 0 (finite even if masked before)."""
        if every_row:
            stop_rows = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device).index_copy(0, rows, stop)
        else:
            stop_rows = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
            stop_rows[rows] = stop
        eos = self.eos[slots]
        eos_logit = torch.where(stop, torch.zeros_like(stop, dtype=logits.dtype), logits[rows, eos])
        logits.masked_fill_(stop_rows[:, None], float("-inf"))
        logits[rows, eos] = eos_logit
