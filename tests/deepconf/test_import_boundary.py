"""The vLLM side imports only the framework-free modules of ``verl_falcon_plugin``.

``vllm_plugins`` is loaded into every vLLM engine (an entry point), on serving hosts that may
have neither verl nor torch's training stack. CONTRIBUTING ("The vLLM side") lists what it may
import from ``verl_falcon_plugin``; this runs the import in a subprocess where ``verl`` and
``torch`` cannot be imported at all (a meta-path finder refuses them), and checks both that the
maths import and that nothing outside that list was pulled in.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: what the vLLM side may import from verl_falcon_plugin (keep in sync with CONTRIBUTING.md): ``requires``,
#: and what importing the package itself runs (no framework imported, nothing installed at import time)
ALLOWED = {
    "verl_falcon_plugin",
    "verl_falcon_plugin.activation",
    "verl_falcon_plugin.import_hooks",
    "verl_falcon_plugin.lazy",
    "verl_falcon_plugin.requires",
}
FRAMEWORK_FREE = ("answers", "confidence", "online", "request_args", "runner", "voting")

CODE = f"""
import importlib, importlib.abc, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("verl", "torch"):
            raise ImportError(f"{{name}} made unimportable by the test")
        return None

sys.meta_path.insert(0, Refuse())
try:
    import torch  # noqa: F401
    blocked = False
except ImportError:
    blocked = True
import vllm_plugins, vllm_plugins.deepconf  # noqa: E401
for name in {FRAMEWORK_FREE!r}:
    importlib.import_module("vllm_plugins.deepconf." + name)
try:
    importlib.import_module("vllm_plugins.deepconf.early_stop")  # the processors' torch core
    processor_error = None
except ImportError as err:
    processor_error = f"{{type(err).__name__}}: {{err}}"
print(json.dumps(dict(
    blocked=blocked,
    imported=sorted(m for m in sys.modules if m.split(".")[0] == "verl_falcon_plugin"),
    frameworks=sorted(m for m in ("verl", "torch", "vllm", "transformers") if m in sys.modules),
    processor_error=processor_error,
)))
"""


def test_vllm_plugins_import_without_verl_and_torch():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["blocked"], "the finder must really make torch unimportable"
    assert set(report["imported"]) <= ALLOWED, f"the vLLM side imported {set(report['imported']) - ALLOWED}"
    assert report["frameworks"] == []
    # what needs torch says so, with the extra to install, instead of half-importing
    assert report["processor_error"].startswith("MissingDependencyError"), report
    assert "pip install 'verl-falcon-plugin[verl]'" in report["processor_error"]
