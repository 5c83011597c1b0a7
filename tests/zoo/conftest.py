"""Keep the zoo offline: nothing under tests/zoo may reach the Hugging Face Hub.

The environment variables are set here, before test modules import transformers,
for the case where the zoo runs alone; ``test_zoo.py`` additionally blocks sockets
while models are built, which holds whatever was imported first.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
