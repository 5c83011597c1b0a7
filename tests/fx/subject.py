"""The one place that decides which fx implementation the tests exercise.

``SUBJECT`` is graphlift's fx API by default. With ``GRAPHLIFT_TEST_ORACLE_ONLY=1``
it is torch.fx itself: every test must pass in that mode, which proves the test
cases (not graphlift) are right. ``ORACLE`` is always torch.fx.

Both are plain namespaces with torch.fx's public names (``symbolic_trace``,
``Tracer``, ``Graph``, ``GraphModule``, ``Interpreter``, ``Transformer``,
``ShapeProp``, ``Proxy``, ``TraceError``, ``wrap``, ``PH``,
``ProxyableClassMeta``), so a test reads
``SUBJECT.symbolic_trace(...)`` whichever library is under test. A name graphlift
does not provide yet surfaces as an ``AttributeError`` in the test that needs it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType, SimpleNamespace

import pytest
import torch.fx
import torch.fx.passes.shape_prop
import torch.fx.proxy

ORACLE_ONLY = os.environ.get("GRAPHLIFT_TEST_ORACLE_ONLY") == "1"

ORACLE = SimpleNamespace(
    name="torch.fx",
    symbolic_trace=torch.fx.symbolic_trace,
    Tracer=torch.fx.Tracer,
    Graph=torch.fx.Graph,
    GraphModule=torch.fx.GraphModule,
    Interpreter=torch.fx.Interpreter,
    Transformer=torch.fx.Transformer,
    ShapeProp=torch.fx.passes.shape_prop.ShapeProp,
    Proxy=torch.fx.Proxy,
    TraceError=torch.fx.proxy.TraceError,
    wrap=torch.fx.wrap,
    PH=torch.fx.PH,
    ProxyableClassMeta=torch.fx.ProxyableClassMeta,
    module=torch.fx,
)


def _load_graphlift() -> ModuleType | None:
    """graphlift.fx once it offers ``symbolic_trace``; None while it is being written."""
    try:
        module = importlib.import_module("graphlift.fx")
    except ImportError:
        return None
    return module if hasattr(module, "symbolic_trace") else None


GRAPHLIFT_FX = None if ORACLE_ONLY else _load_graphlift()
SUBJECT = ORACLE if ORACLE_ONLY else GRAPHLIFT_FX
IS_ORACLE = SUBJECT is ORACLE


def require_subject():
    """The library under test, or skip when graphlift's fx API has not landed."""
    if SUBJECT is None:
        pytest.skip("graphlift.fx.symbolic_trace is not available yet")
    return SUBJECT
