"""``rl-data export``: filtered RL problems (JSONL) -> verl's RL parquet (``data.train_files``).

verl's ``RLHFDataset`` (``verl/utils/dataset/rl_dataset.py``) reads, per row:

* ``prompt``: chat messages, rendered by the *model's* chat template at rollout time. The
  paper's system prompt goes in as the first message, so the template places it exactly as
  it does at evaluation (Falcon-H1R used the same system prompt for training and evaluation);
* ``data_source``: routes the reward (``verl_falcon_plugin.rewards.router``);
* ``reward_model``: ``{"style": "rule", "ground_truth": ...}``; a non-string ground truth
  (code tests) is JSON-encoded, which the code reward parses back;
* ``extra_info``: ``index`` (verl reads it), ``question`` (the science judge needs it),
  ``domain``, and what the pipeline learned about the problem (``sft_solve_rate``...).

Every row is checked with the reward router before anything is written, so a problem the
RL run could not score fails here, naming its line, not hours into training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from verl_falcon_plugin.data.jsonl_io import MalformedRowError, atomic_output, read_jsonl
from verl_falcon_plugin.data.rl_rollouts import PAPER_SYSTEM_PROMPT
from verl_falcon_plugin.requires import require

#: problem fields copied into ``extra_info`` when present (the rest of a row is dropped)
CARRIED_FIELDS = ("id", "uid", "sft_solve_rate", "filter_decision", "difficulty")


@dataclass(frozen=True)
class ExportConfig:
    system_prompt: str | None = PAPER_SYSTEM_PROMPT
    split: str = "train"
    ability: str | None = None  # verl's optional column; defaults to the reward domain


def verl_row(row: dict[str, Any], index: int, path: str, line: int, config: ExportConfig) -> dict[str, Any]:
    """One problem in verl's RL schema."""
    router = require("verl_falcon_plugin.rewards.router", "exporting RL problems")
    messages = _messages(row, path, line)
    if config.system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": config.system_prompt}, *messages]
    if "ground_truth" not in row:
        raise MalformedRowError(path, line, "missing field 'ground_truth' (the reward needs it)")
    if not isinstance(row.get("data_source"), str):
        raise MalformedRowError(path, line, "field 'data_source' must be a string (it routes the reward)")
    extra = dict(row.get("extra_info") or {})
    try:
        domain = router.resolve_domain(row["data_source"], extra)
    except ValueError as err:
        raise MalformedRowError(path, line, f"cannot route the reward: {err}") from err
    ground_truth = row["ground_truth"]
    extra.update({k: row[k] for k in CARRIED_FIELDS if k in row})
    extra.update(index=index, split=config.split, domain=domain, question=messages[-1]["content"])
    return {
        "data_source": row["data_source"],
        "prompt": messages,
        "ability": config.ability or domain,
        "reward_model": {
            "style": "rule",
            "ground_truth": ground_truth if isinstance(ground_truth, str) else json.dumps(ground_truth),
        },
        "extra_info": extra,
    }


def _messages(row: dict[str, Any], path: str, line: int) -> list[dict[str, str]]:
    prompt = row.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "role" in m for m in prompt):
        return [{"role": str(m["role"]), "content": str(m.get("content", ""))} for m in prompt]
    raise MalformedRowError(path, line, "field 'prompt' must be a non-empty string or a chat message list")


def export_parquet(problems_path: str, out_path: str, config: ExportConfig = ExportConfig()) -> dict[str, Any]:
    """Write ``out_path`` (atomically) from the JSONL ``problems_path``; returns a summary."""
    pyarrow = require("pyarrow", "rl-data export")
    parquet = require("pyarrow.parquet", "rl-data export")
    rows = [verl_row(row, index, problems_path, line, config) for index, (line, row) in
            enumerate(read_jsonl(problems_path))]  # fmt: skip
    if not rows:
        raise ValueError(f"{problems_path} has no problems: nothing to train on (did the filter drop them all?)")
    table = pyarrow.Table.from_pylist(rows)
    with atomic_output(out_path, "wb") as handle:
        parquet.write_table(table, handle)
    domains: dict[str, int] = {}
    for row in rows:
        domains[row["extra_info"]["domain"]] = domains.get(row["extra_info"]["domain"], 0) + 1
    return {"problems": len(rows), "domains": domains, "system_prompt": bool(config.system_prompt)}
