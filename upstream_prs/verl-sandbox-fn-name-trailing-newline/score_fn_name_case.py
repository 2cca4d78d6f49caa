"""Score a function-call (``fn_name``) test case through verl's sandbox_fusion reward; prints JSON.

Run with ``PYTHONPATH`` at a copy of verl (patched or not) and ``VERL_USE_EXTERNAL_PLUGINS=none``. The sandbox
is replaced by local execution: the code verl would POST to ``/run_code`` (its fn_name wrapper around the
solution) runs in ``python3`` with the test's stdin, and the result comes back in Sandbox-Fusion's response
shape. Everything else is verl's own code.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path


def register_bare_verl_packages() -> None:
    """``verl`` and ``verl.utils`` as bare packages over the copy: their ``__init__`` imports torch, Ray and the
    plugins (seconds), none of which the reward functions under test need."""
    root = Path(importlib.util.find_spec("verl").submodule_search_locations[0])
    for name, path in (("verl", root), ("verl.utils", root / "utils")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package


register_bare_verl_packages()

from verl.utils.reward_score import sandbox_fusion  # noqa: E402
from verl.utils.reward_score.sandbox_fusion import utils  # noqa: E402

SOLUTION = "```python\ndef add(a, b):\n    return a + b\n```"


def run_locally(sandbox_fusion_url, code, stdin, compile_timeout, run_timeout, memory_limit_mb, language="python"):
    proc = subprocess.run([sys.executable, "-c", code], input=stdin or "", capture_output=True, text=True, timeout=30)
    run_result = {
        "status": "Finished",
        "return_code": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "execution_time": 0.0,
    }
    return {"status": "Success" if proc.returncode == 0 else "Failed", "run_result": run_result}, None


def score(stdin: str) -> dict:
    tests = json.dumps({"inputs": [stdin], "outputs": ["3"], "fn_name": "add"})
    value, metadata = sandbox_fusion.compute_score("http://local", None, 1024, SOLUTION, tests)
    return {"score": value, "stderr": metadata[0].get("stderr")}


def main() -> None:
    utils.call_sandbox_api = run_locally
    print(json.dumps({"verl": utils.__file__, "no_newline": score("1\n2"), "trailing_newline": score("1\n2\n")}))


if __name__ == "__main__":
    main()
