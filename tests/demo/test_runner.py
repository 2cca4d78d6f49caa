"""The demo's stage runner: markers, resume from the failed stage, stages that cannot run are reported, not faked."""

from __future__ import annotations

import json
import sys

from verl_falcon_plugin.demo.config import QUICK
from verl_falcon_plugin.demo.procs import StageFailed
from verl_falcon_plugin.demo.runner import Context, Stage, StageNotRun, load_markers, run_stages


def context(tmp_path):
    return Context(out=tmp_path, config=QUICK, repo=tmp_path, python=sys.executable, vllm_python=sys.executable)


def test_a_rerun_continues_from_the_stage_that_failed(tmp_path):
    calls = []
    failing = {"b": True}

    def make(name):
        def run(ctx):
            calls.append(name)
            if failing.get(name):
                raise StageFailed(f"{name} broke")
            return {"value": name}

        return Stage(name, name, run)

    stages = [make("a"), make("b"), make("c")]
    assert run_stages(stages, context(tmp_path)) == 1
    assert calls == ["a", "b"] and set(load_markers(tmp_path)) == {"a"}
    failing["b"] = False
    assert run_stages(stages, context(tmp_path)) == 0
    assert calls == ["a", "b", "b", "c"]  # a was not redone
    markers = load_markers(tmp_path)
    assert markers["c"]["value"] == "c" and markers["c"]["wall_s"] >= 0 and markers["c"]["peak_rss_mb"] > 0


def test_a_stage_that_cannot_run_blocks_its_dependents_with_the_reason(tmp_path):
    def not_here(ctx):
        raise StageNotRun("needs a GPU-free trainer that is not installed")

    stages = [Stage("sft", "sft", not_here), Stage("eval", "eval", lambda ctx: {}, ("sft",)),
              Stage("other", "other", lambda ctx: {"x": 1})]  # fmt: skip
    assert run_stages(stages, context(tmp_path)) == 2
    assert set(load_markers(tmp_path)) == {"other"}
    assert "not installed" in (tmp_path / "stages" / "sft.not_run").read_text()
    assert "needs sft" in (tmp_path / "stages" / "eval.not_run").read_text()


def test_from_redoes_a_stage_and_those_after_it(tmp_path):
    calls = []
    stages = [Stage(n, n, lambda ctx, n=n: calls.append(n) or {}) for n in "abc"]
    run_stages(stages, context(tmp_path))
    run_stages(stages, context(tmp_path), restart_from="b")
    assert calls == ["a", "b", "c", "b", "c"]
    assert json.loads((tmp_path / "stages" / "a.json").read_text())["stage"] == "a"


def test_from_removes_the_outputs_a_redone_stage_would_otherwise_resume_from(tmp_path):
    def evaluate(ctx):  # resumes from what is already in its output, as the eval recipe does
        out = ctx.out / "eval" / "rows.jsonl"
        out.parent.mkdir(exist_ok=True)
        with out.open("a") as handle:
            handle.write(f"{(ctx.out / 'model.txt').read_text()}\n")
        return {}

    model = {"version": "1"}

    def train(ctx):
        (ctx.out / "model.txt").write_text(model["version"])
        return {}

    stages = [Stage("train", "train", train, outputs=("model.txt",)),
              Stage("eval", "eval", evaluate, ("train",), outputs=("eval",))]  # fmt: skip
    run_stages(stages, context(tmp_path))
    model["version"] = "2"
    run_stages(stages, context(tmp_path), restart_from="train")
    assert (tmp_path / "eval" / "rows.jsonl").read_text() == "2\n"  # nothing left from the model of version 1
