"""Record torch.export's column of the conformance suite in tests/conformance/oracle.json.

Run after adding cases: ``python tools/conformance_oracle.py [name-substring ...]``
(only the matching cases are re-recorded). The slow tier
(tests/conformance/test_conformance.py::test_torch_column) re-runs torch and
fails when this file no longer says what torch does.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conformance.cases import all_cases  # noqa: E402
from tests.conformance.harness import observe, torch_exporter  # noqa: E402

ORACLE = ROOT / "tests" / "conformance" / "oracle.json"


def main(filters: list[str]) -> None:
    warnings.filterwarnings("ignore")
    oracle = json.loads(ORACLE.read_text()) if ORACLE.exists() else {}
    exporter = torch_exporter()
    cases = all_cases()
    for name, case in cases.items():
        if filters and not any(f in name for f in filters):
            continue
        observation, _ = observe(case, exporter)
        oracle[name] = observation.to_json()
        print(name, observation.outcome, observation.runs, flush=True)
    oracle = {name: oracle[name] for name in sorted(oracle) if name in cases}
    ORACLE.write_text(json.dumps(oracle, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
