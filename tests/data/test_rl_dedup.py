"""RL/SFT dedup: normalised exact matches, MinHash near duplicates (datasketch), in-set duplicates."""

from __future__ import annotations

import json

from verl_falcon_plugin.cli import main
from verl_falcon_plugin.data.rl_dedup import DedupConfig, SFTIndex, shingles

BASE = "Let x be the smallest positive integer such that x squared plus seven x is divisible by thirteen find x"


def jaccard(a, b, n=3):
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb)


def test_minhash_estimate_tracks_true_jaccard():
    index = SFTIndex(DedupConfig(num_perm=256))
    near = BASE.replace("seven", "eight")
    estimate = index.signature(BASE).jaccard(index.signature(near))
    assert abs(estimate - jaccard(BASE, near)) < 0.1


def test_command_drops_exact_near_and_in_set_duplicates_and_reports_why(tmp_path, capsys):
    sft = tmp_path / "sft.jsonl"
    sft_rows = [
        {"messages": [{"role": "user", "content": BASE}, {"role": "assistant", "content": "a"}]},
        {"prompt": "Compute the area of a circle of radius three"},
    ]
    sft.write_text("".join(json.dumps(r) + "\n" for r in sft_rows))
    near = BASE + " please"  # one extra word: Jaccard of 3-gram sets ~0.94
    far = BASE.replace("smallest positive integer", "largest negative real").replace("thirteen", "five")
    assert jaccard(BASE, near) > 0.8 > jaccard(BASE, far)
    rl_rows = [
        {"id": 1, "prompt": "  COMPUTE the area of a circle   of radius three"},  # exact after normalising
        {"id": 2, "prompt": near},
        {"id": 3, "prompt": far},
        {"id": 4, "prompt": "An unrelated question about primes"},
        {"id": 5, "prompt": "an unrelated question about primes"},  # duplicate of id 4
    ]
    rl = tmp_path / "rl.jsonl"
    rl.write_text("".join(json.dumps(r) + "\n" for r in rl_rows))
    out, report = tmp_path / "kept.jsonl", tmp_path / "report.json"
    assert main(["rl-data", "dedup", "--rl", str(rl), "--sft", str(sft), "--out", str(out),
                 "--report", str(report), "--no-progress"]) == 0  # fmt: skip
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [3, 4]
    summary = json.loads(report.read_text())
    reasons = {row["line"]: (row["reason"], row["matched"]) for row in summary["dropped_rows"]}
    assert reasons[1] == ("exact_match_sft", f"{sft}:2")
    assert reasons[2] == ("near_duplicate_sft", f"{sft}:1")
    assert reasons[5] == ("duplicate_in_rl_set", f"{rl}:4")
    assert "kept 2, dropped 3" in capsys.readouterr().out


def test_threshold_is_configurable(tmp_path):
    index = SFTIndex(DedupConfig(threshold=0.99))
    index.add("sft:1", BASE)
    assert index.match(BASE + " please") is None
    assert index.match(BASE.upper())[0] == "exact_match_sft"
