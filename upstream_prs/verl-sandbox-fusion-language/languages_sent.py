"""The language verl's reward functions send to Sandbox-Fusion for a code sample; prints JSON.

Run with ``PYTHONPATH`` at a copy of verl (patched or not) and ``VERL_USE_EXTERNAL_PLUGINS=none``.
``call_sandbox_api`` is replaced by a recorder that answers like a passing run; the rest is verl's own code:
``default_compute_score`` for a ``codeforces`` sample whose ``extra_info`` names its language, and
``sandbox_fusion.compute_score`` called with ``language=``.
"""

from __future__ import annotations

import importlib.util
import json
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

from verl.utils import reward_score  # noqa: E402
from verl.utils.reward_score import sandbox_fusion  # noqa: E402
from verl.utils.reward_score.sandbox_fusion import utils  # noqa: E402

CPP = '```cpp\n#include <cstdio>\nint main() { int a; scanf("%d", &a); printf("%d", a); }\n```'
TESTS = json.dumps({"inputs": ["7"], "outputs": ["7"]})
sent: list[str] = []


def recorder(sandbox_fusion_url, code, stdin, compile_timeout, run_timeout, memory_limit_mb, language="python"):
    sent.append(language)
    return {"status": "Success", "run_result": {"status": "Finished", "return_code": 0, "stdout": stdin}}, None


def language_sent(call) -> str:
    sent.clear()
    try:
        call()
    except TypeError as error:
        return f"TypeError: {error}"
    return sent[0] if sent else "nothing sent"


def main() -> None:
    utils.call_sandbox_api = recorder
    url = "http://local/run_code"
    results = {
        "default_compute_score_cpp": language_sent(
            lambda: reward_score.default_compute_score(
                "codeforces", CPP, TESTS, extra_info={"language": "cpp"}, sandbox_fusion_url=url
            )
        ),
        "default_compute_score_no_language": language_sent(
            lambda: reward_score.default_compute_score("codeforces", CPP, TESTS, extra_info={}, sandbox_fusion_url=url)
        ),
        "compute_score_cpp": language_sent(
            lambda: sandbox_fusion.compute_score(url, None, 1024, CPP, TESTS, language="cpp")
        ),
    }
    print(json.dumps({"verl": utils.__file__, **results}))


if __name__ == "__main__":
    main()
