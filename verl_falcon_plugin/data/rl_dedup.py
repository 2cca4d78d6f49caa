"""Remove RL problems that overlap the SFT data: normalised exact match plus MinHash near-duplicates.

Normalisation: Unicode NFKC, lower case, whitespace collapsed. Near duplicates: word
n-gram shingles, ``datasketch`` MinHash + LSH at a configurable Jaccard threshold; an LSH
candidate counts only if its estimated Jaccard similarity reaches the threshold. Exact
duplicates *within* the RL set are removed too (the first occurrence is kept). Every
dropped problem is reported with the reason and the SFT row it matched.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from verl_falcon_plugin.data.jsonl_io import MalformedRowError, read_jsonl, write_json, write_jsonl
from verl_falcon_plugin.data.sources import iter_file_rows
from verl_falcon_plugin.requires import require

WORD = re.compile(r"\w+", re.UNICODE)
LSH_MAX_THRESHOLD = 0.9


@dataclass(frozen=True)
class DedupConfig:
    #: estimated Jaccard similarity of n-gram sets at or above which a problem is a near duplicate
    threshold: float = 0.8
    ngram: int = 3
    num_perm: int = 128
    rl_field: str = "prompt"
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def exact_key(text: str) -> str:
    return hashlib.sha1(normalise(text).encode()).hexdigest()


def shingles(text: str, n: int) -> set[str]:
    words = WORD.findall(normalise(text))
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def sft_prompt(row: dict[str, Any]) -> str | None:
    """The problem statement of an SFT row: its ``prompt`` or its first user message."""
    if isinstance(row.get("prompt"), str):
        return row["prompt"]
    for message in row.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return None


def rl_prompt(row: dict[str, Any], field: str, path: str, line: int) -> str:
    value = row.get(field)
    if isinstance(value, list):  # verl RL parquet rows carry the prompt as chat messages
        value = sft_prompt({"messages": value})
    if not isinstance(value, str) or not value.strip():
        raise MalformedRowError(path, line, f"field {field!r} must be a non-empty string or a chat message list")
    return value


class SFTIndex:
    """Exact keys and a MinHash LSH over the SFT prompts."""

    def __init__(self, config: DedupConfig):
        datasketch = require("datasketch", "RL/SFT deduplication")
        self.config = config
        self._minhash = datasketch.MinHash
        # The LSH only proposes candidates; each is then checked against the threshold.
        # datasketch cannot band a very high threshold (b < 2), so candidates are
        # gathered at <= 0.9, a superset of what the threshold accepts.
        self.lsh = datasketch.MinHashLSH(threshold=min(config.threshold, LSH_MAX_THRESHOLD), num_perm=config.num_perm)
        self.exact: dict[str, str] = {}
        self.signatures: dict[str, Any] = {}
        self.rows = 0

    def signature(self, text: str) -> Any:
        minhash = self._minhash(num_perm=self.config.num_perm, seed=self.config.seed)
        for shingle in shingles(text, self.config.ngram):
            minhash.update(shingle.encode())
        return minhash

    def add(self, origin: str, text: str) -> None:
        self.rows += 1
        key = exact_key(text)
        if key in self.exact:
            return  # duplicate inside the SFT data: one entry suffices
        self.exact[key] = origin
        signature = self.signature(text)
        self.lsh.insert(origin, signature)
        self.signatures[origin] = signature

    def match(self, text: str) -> tuple[str, str, float] | None:
        """``(reason, sft_origin, similarity)`` of the overlap, or ``None``."""
        key = exact_key(text)
        if key in self.exact:
            return "exact_match_sft", self.exact[key], 1.0
        signature = self.signature(text)
        best: tuple[float, str] | None = None
        for origin in self.lsh.query(signature):
            similarity = signature.jaccard(self.signatures[origin])
            if similarity >= self.config.threshold and (best is None or similarity > best[0]):
                best = (similarity, origin)
        if best is None:
            return None
        return "near_duplicate_sft", best[1], round(best[0], 4)


def iter_sft_prompts(paths: list[str]) -> Iterator[tuple[str, str]]:
    for path in paths:
        for number, row in iter_file_rows(path):
            text = sft_prompt(row)
            if text is None:
                raise MalformedRowError(path, number, "no `prompt` and no user message in `messages`")
            yield f"{path}:{number}", text


def dedup(
    rl_path: str, sft_paths: list[str], out_path: str, report_path: str, config: DedupConfig, progress: bool = True
) -> dict[str, Any]:
    from tqdm import tqdm

    index = SFTIndex(config)
    for origin, text in tqdm(iter_sft_prompts(sft_paths), desc="index SFT", unit="row", disable=not progress):
        index.add(origin, text)
    kept, dropped = [], []
    first_seen: dict[str, int] = {}
    for line, row in tqdm(read_jsonl(rl_path), desc="dedup RL", unit="problem", disable=not progress):
        text = rl_prompt(row, config.rl_field, rl_path, line)
        key = exact_key(text)
        if key in first_seen:
            dropped.append(
                {
                    "line": line,
                    "reason": "duplicate_in_rl_set",
                    "matched": f"{rl_path}:{first_seen[key]}",
                    "similarity": 1.0,
                }
            )
            continue
        first_seen[key] = line
        overlap = index.match(text)
        if overlap is None:
            kept.append(row)
        else:
            reason, origin, similarity = overlap
            dropped.append(
                {"line": line, "id": row.get("id"), "reason": reason, "matched": origin, "similarity": similarity}
            )
    reasons: dict[str, int] = {}
    for item in dropped:
        reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
    report = {
        "rl_input": str(rl_path),
        "sft_inputs": [str(p) for p in sft_paths],
        "sft_rows_indexed": index.rows,
        "config": asdict(config),
        "problems": len(kept) + len(dropped),
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_by_reason": reasons,
        "dropped_rows": dropped,
    }
    write_jsonl(out_path, kept)
    write_json(report_path, report)
    return report
