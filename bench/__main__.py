"""`make bench`: runs every benchmark script in bench/ and collects their JSON under bench/results/.

Each script is run as `python bench/NAME.py --out bench/results/NAME.json`; pass names to run a subset.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))
    if names:
        scripts = [p for p in scripts if p.stem in names]
    failed = []
    for script in scripts:
        out = results / f"{script.stem}.json"
        print(f"== {script.stem}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script), "--out", str(out)], cwd=HERE.parent)
        print(f"   exit {code} after {time.monotonic() - started:.0f}s -> {out}", flush=True)
        if code != 0:
            failed.append(script.stem)
    summary = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.stem != "summary"}
    (results / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
