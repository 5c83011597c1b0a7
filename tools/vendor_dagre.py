"""Re-vendor the graph layout library of ``graphlift show --html`` from its npm package.

    python tools/vendor_dagre.py [VERSION]

Installs ``@dagrejs/dagre`` (MIT) with npm into a temporary directory and copies
its browser build and license to ``graphlift/cli/assets/``; then update
``DAGRE_SHA256`` in ``tests/cli/test_graph_view.py`` and ``assets/VENDORED.md``.
The package embeds the file in every page it writes, so pages need no network.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "@dagrejs/dagre"
VERSION = "3.1.4"
ASSETS = Path(__file__).resolve().parent.parent / "graphlift" / "cli" / "assets"


def main(version: str = VERSION) -> None:
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run(["npm", "init", "-y"], cwd=directory, check=True, capture_output=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"{PACKAGE}@{version}"],
            cwd=directory, check=True,
        )  # fmt: skip
        package = Path(directory) / "node_modules" / PACKAGE
        shutil.copyfile(package / "dist" / "dagre.min.js", ASSETS / "dagre.min.js")
        shutil.copyfile(package / "LICENSE", ASSETS / "dagre.LICENSE.txt")
    digest = hashlib.sha256((ASSETS / "dagre.min.js").read_bytes()).hexdigest()
    print(f"{PACKAGE}@{version}: dagre.min.js sha256 {digest}")


if __name__ == "__main__":
    main(*sys.argv[1:])
