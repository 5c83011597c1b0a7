"""Record torch.export's column of the model sweep in tests/sweep/torch_oracle.json.

Run after adding or changing a sweep case, or after upgrading torch:

    python tools/model_sweep_oracle.py [case ...] [--modes static,named,auto]

Only the named cases (default: every case) are re-run, through torch.export
alone (``tests/sweep/runner.py``, the same stages graphlift goes through); the
cells of cases no longer in the sweep are dropped. All cases take ~15
CPU-minutes. ``python benchmarks/model_sweep.py --record`` records the same
column while measuring both exporters. ``tests/sweep/test_oracle.py`` (slow
tier) fails when a sample of the recorded cells no longer says what torch does.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.sweep import oracle  # noqa: E402
from tests.sweep.models import CASES, CASES_BY_NAME  # noqa: E402
from tests.sweep.runner import MODES, TORCH, run_cell  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (default: every case)")
    parser.add_argument("--modes", default=",".join(MODES))
    options = parser.parse_args()
    unknown = [name for name in options.cases if name not in CASES_BY_NAME]
    if unknown:
        parser.error(f"no sweep case named {', '.join(unknown)}")
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    recorded = oracle.load()
    for case in [CASES_BY_NAME[n] for n in options.cases] if options.cases else CASES:
        for mode in options.modes.split(","):
            results = run_cell(TORCH, case, mode)
            oracle.record(recorded, case.name, mode, results)
            print(f"{case.name:<24}{mode:<8}", "  ".join(map(str, results.values())), flush=True)
            oracle.save({name: cells for name, cells in recorded.items() if name in CASES_BY_NAME})


if __name__ == "__main__":
    main()
