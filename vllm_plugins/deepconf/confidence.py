"""DeepConf confidence measures (Fu et al. 2025, Sec. 2), in numpy.

Conventions (decided here, tested in ``tests/deepconf``):

* **Token confidence** is ``-mean`` of the *k highest* log-probabilities of the
  distribution the token was sampled from (k = 20 by default). When computing it
  from vLLM's returned logprobs, pass exactly the top-k entries: vLLM appends the
  sampled token as a 21st entry when it falls outside the top-k, and the reference
  implementation (facebookresearch/deepconf ``compute_confidence``) averages all
  21 then. We do not: the processor computes from the logits, where there is no
  such extra entry, and both paths must agree (see :func:`topk_from_vllm_logprobs`).
* **No rounding.** The reference rounds token confidences and window means to three
  decimals; rounding changes which window is the lowest and moves the threshold,
  so we keep full float64 precision.
* **Groups** are the means of every full window of ``window`` consecutive tokens;
  a trace shorter than the window has a single group, the mean of all its tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_TOP_K = 20
DEFAULT_WINDOW = 2048


def _as_confs(confs: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(confs, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"confs must be a 1-D sequence of token confidences, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("confs is empty: a trace needs at least one generated token to have a confidence")
    return arr


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def token_confidence(topk_logprobs: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``C_i = -mean_j log P_i(j)`` over the last axis (the top-k log-probs of each token)."""
    arr = np.asarray(topk_logprobs, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError("topk_logprobs needs a non-empty last axis of top-k log-probabilities")
    return -arr.mean(axis=-1)


def topk_from_vllm_logprobs(step_logprobs: Mapping[int, Any], k: int = DEFAULT_TOP_K) -> np.ndarray:
    """The ``k`` highest log-probs of one step of vLLM's returned logprobs dict.

    vLLM returns the top-k *plus* the sampled token when it ranks below k; we keep
    the k highest values (by value, so ties and ranks need no special-casing).
    """
    k = _check_positive("k", k)
    values = np.array([getattr(lp, "logprob", lp) for lp in step_logprobs.values()], dtype=np.float64)
    if values.size < k:
        raise ValueError(f"step has {values.size} logprobs but k={k}: request logprobs>={k} from vLLM")
    return np.sort(values)[::-1][:k]


def sliding_group_confidence(confs: Sequence[float] | np.ndarray, window: int = DEFAULT_WINDOW) -> np.ndarray:
    """Means of every full window of ``window`` tokens (one mean when the trace is shorter)."""
    arr = _as_confs(confs)
    window = _check_positive("window", window)
    if arr.size <= window:
        return np.array([arr.mean()])
    # cumulative sums in float64: O(n) and exact enough for 64K-token traces
    csum = np.concatenate(([0.0], np.cumsum(arr)))
    return (csum[window:] - csum[:-window]) / window


def lowest_group_confidence(confs: Sequence[float] | np.ndarray, window: int = DEFAULT_WINDOW) -> float:
    """``C_least``: the minimum sliding-window mean."""
    return float(sliding_group_confidence(confs, window).min())


def bottom_group_confidence(
    confs: Sequence[float] | np.ndarray, window: int = DEFAULT_WINDOW, fraction: float = 0.1
) -> float:
    """``C_bottom``: the mean of the lowest ``fraction`` of window means (at least one window)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    groups = np.sort(sliding_group_confidence(confs, window))
    count = max(1, int(groups.size * fraction))
    return float(groups[:count].mean())


def tail_confidence(confs: Sequence[float] | np.ndarray, tail: int = DEFAULT_WINDOW) -> float:
    """``C_tail``: the mean confidence of the last ``tail`` tokens (all tokens when fewer)."""
    arr = _as_confs(confs)
    tail = _check_positive("tail", tail)
    return float(arr[-tail:].mean())


def mean_confidence(confs: Sequence[float] | np.ndarray) -> float:
    """``C_avg``: the mean token confidence of the whole trace."""
    return float(_as_confs(confs).mean())


def keep_top_threshold(scores: Sequence[float] | np.ndarray, keep_top: float) -> float:
    """The score a trace must reach (``>=``) to be among the top ``keep_top`` fraction.

    This is the one percentile convention of the package, used both for the online
    stopping threshold and for offline filtering before a vote: ``keep_top`` = η is the
    fraction *kept*, so η = 0.1 keeps the top 10 % (DeepConf-low, aggressive) and
    η = 0.9 keeps the top 90 % (DeepConf-high, conservative). The threshold is
    ``numpy.percentile(scores, 100 * (1 - η))`` with numpy's default linear
    interpolation. (The reference repository passes the *kept* percentage on its
    ``main`` branch, ``percentile(x, 100 - p)``, but the *percentile itself* on its
    ``reproduce`` branch, ``percentile(x, p)``: the same number means opposite things.)
    """
    if not 0.0 < keep_top <= 1.0:
        raise ValueError(f"keep_top (eta) must be in (0, 1], the fraction of traces kept; got {keep_top!r}")
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("scores must be a non-empty 1-D sequence")
    return float(np.percentile(arr, 100.0 * (1.0 - keep_top)))
