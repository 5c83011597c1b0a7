"""``python -m graphlift`` is the ``graphlift`` command."""

import sys

from graphlift.cli import main

sys.exit(main())
