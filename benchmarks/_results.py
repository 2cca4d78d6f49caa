"""Where benchmarks leave their figures: ``benchmarks/results/<name>.json``, written whole or not at all."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with the machine it ran on, atomically (a killed run leaves the previous file)."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    document = {"machine": platform.platform(), "cpu_count": os.cpu_count(), **payload}
    with tempfile.NamedTemporaryFile("w", dir=RESULTS, suffix=".tmp", delete=False) as tmp:
        json.dump(document, tmp, indent=2)
    os.replace(tmp.name, out)
    print(f"wrote {out}")
    return out
