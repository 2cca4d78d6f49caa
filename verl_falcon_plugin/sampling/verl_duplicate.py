"""``duplicate`` inside verl: copies of groups with signal, stored in TransferQueue under fresh keys.

A verl batch is a list of TransferQueue keys (``{uid}_{session}_{index}``), and TransferQueue refuses a
batch that names a key twice (``KVBatchMeta``: "Got duplicated keys", ``transfer_queue/metadata.py`` in
0.1.11). The trainer also writes log-probs and advantages back per key, and GRPO groups rows by their
``uid`` field. So a copy of a group is a new group: every trajectory is read and stored again under
``{uid}-copy{n}_{session}_{index}``, with its ``uid`` field set to ``{uid}-copy{n}`` (a group of its
own, hence exactly the advantages of the original) and the original's tags (so its age is the
original's). The trainer clears the copies' keys with the rest of the batch after the step.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from verl_falcon_plugin.requires import require

_tq = require("transfer_queue", "the online-sampling verl sampler")
_tensordict = require("tensordict", "the online-sampling verl sampler")

COPY_MARK = "-copy"


def copies_to_make(kept: list[str], deficit: int, rng: np.random.Generator) -> list[str]:
    """``deficit`` uids drawn from ``kept`` in rounds of a random permutation (copy counts differ by <= 1),
    exactly as the framework-free ``strategies.duplicate``."""
    if not kept or deficit <= 0:
        return []
    rounds = -(-deficit // len(kept))
    order = np.concatenate([rng.permutation(len(kept)) for _ in range(rounds)])[:deficit]
    return [kept[i] for i in order]


def store_copies(partition_id: str, sources: list[str], snapshot: dict[str, dict]) -> tuple[list[str], list[dict]]:
    """Store one copy of each group in ``sources`` (a uid may repeat); returns the copies' keys and tags.

    ``snapshot`` is the sampler's ``{trajectory key: tag}`` view of the partition."""
    keys_of: dict[str, list[str]] = defaultdict(list)
    for key in snapshot:
        keys_of[key.split("_")[0]].append(key)
    copy_number: dict[str, int] = defaultdict(int)
    new_keys: list[str] = []
    new_tags: list[dict] = []
    # One read/write per round: within a round every source is distinct, so no key is named twice.
    for round_sources in _rounds(sources):
        old_keys, keys, uids = [], [], []
        for uid in round_sources:
            copy_number[uid] += 1
            copy_uid = f"{uid}{COPY_MARK}{copy_number[uid]}"
            for key in keys_of[uid]:
                old_keys.append(key)
                keys.append(copy_uid + key[len(uid) :])
                uids.append(copy_uid)
        if not old_keys:
            continue
        data = _tq.kv_batch_get(keys=old_keys, partition_id=partition_id)
        data.set("uid", _tensordict.NonTensorStack(*uids))
        tags = [dict(snapshot[key]) for key in old_keys]
        _tq.kv_batch_put(keys=keys, partition_id=partition_id, fields=data, tags=tags)
        new_keys.extend(keys)
        new_tags.extend(tags)
    return new_keys, new_tags


def _rounds(sources: list[str]) -> list[list[str]]:
    """Split ``sources`` into consecutive runs without a repeated uid."""
    rounds: list[list[str]] = [[]]
    for uid in sources:
        if uid in rounds[-1]:
            rounds.append([])
        rounds[-1].append(uid)
    return [r for r in rounds if r]
