"""DeepConf (Fu et al. 2025, "Deep Think with Confidence") for vLLM and transformers.

The maths, voting and the online controller are plain numpy and are imported
here; the engine integrations are imported from their own modules so that
``import vllm_plugins.deepconf`` needs neither torch nor vLLM:

* :mod:`.vllm_processor` – ``DeepConfLogitsProcessor`` (vLLM V1 and Model-Runner-V2),
  loaded by the ``vllm.logits_processors`` entry point;
* :mod:`.hf` – the same early stop for ``transformers`` ``generate``;
* :mod:`.runner` – ``falcon-h1r deepconf run``.
"""

from vllm_plugins.deepconf.answers import canonical, extract_answer, last_boxed
from vllm_plugins.deepconf.confidence import (
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    bottom_group_confidence,
    keep_top_threshold,
    lowest_group_confidence,
    mean_confidence,
    sliding_group_confidence,
    tail_confidence,
    token_confidence,
    topk_from_vllm_logprobs,
)
from vllm_plugins.deepconf.online import (
    OnlineConfig,
    OnlineResult,
    Trace,
    TraceGenerator,
    run_online,
    stop_index,
    warmup_threshold,
)
from vllm_plugins.deepconf.request_args import DeepConfArgs, parse_extra_args
from vllm_plugins.deepconf.voting import VOTING_METHODS, trace_score, vote

__all__ = [
    "DEFAULT_TOP_K",
    "DEFAULT_WINDOW",
    "DeepConfArgs",
    "OnlineConfig",
    "OnlineResult",
    "Trace",
    "TraceGenerator",
    "VOTING_METHODS",
    "bottom_group_confidence",
    "canonical",
    "extract_answer",
    "keep_top_threshold",
    "last_boxed",
    "lowest_group_confidence",
    "mean_confidence",
    "parse_extra_args",
    "run_online",
    "sliding_group_confidence",
    "stop_index",
    "tail_confidence",
    "token_confidence",
    "topk_from_vllm_logprobs",
    "trace_score",
    "vote",
    "warmup_threshold",
]
