"""Meta kernels that branch on the device see the user's device, not "cuda".

torch's Python meta kernels ask ``device_hint(tensor)``
(``torch/_meta_registrations.py``) before device-specific checks: a FakeTensor
answers its fake device, a plain meta tensor "cuda". graphlift's shadows are
plain meta tensors standing for tensors on the user's device, so
``_scaled_mm`` of CPU tensors was checked as on CUDA (inner sizes multiples
of 16, a guard eager CPU never needs). While an op's metadata is computed,
``computing_on(device)`` names the device the op runs on, and the patched
``device_hint`` answers it for meta tensors (the user's own ``meta`` device
keeps torch's answer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
import torch._meta_registrations as meta_registrations

from graphlift.patching import Patcher

_DEVICE: ContextVar[torch.device | None] = ContextVar("graphlift_op_device", default=None)


@contextmanager
def computing_on(device: torch.device) -> Iterator[None]:
    """Meta kernels run inside see ``device`` as the device of their meta tensors."""
    token = _DEVICE.set(device if device.type != "meta" else None)
    try:
        yield
    finally:
        _DEVICE.reset(token)


def _answering_user_device(original: Callable[[Any], str]) -> Callable[[Any], str]:
    def device_hint(tensor: Any) -> str:
        device = _DEVICE.get()
        if device is not None and getattr(getattr(tensor, "device", None), "type", "") == "meta":
            return device.type
        return original(tensor)

    return device_hint


@contextmanager
def user_device_hints() -> Iterator[None]:
    """torch's ``device_hint`` answers the device named by ``computing_on``."""
    with Patcher() as patcher:
        original = meta_registrations.device_hint
        patcher.patch_attribute(meta_registrations, "device_hint", _answering_user_device(original))
        yield
