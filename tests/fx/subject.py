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

# torch.fx's Tracer leaves buffers unproxied (``proxy_buffer_attributes = False``):
# ``self.mask == 0`` runs at trace time and becomes a constant (stale after
# load_state_dict), and slicing a buffer by a traced length fails. graphlift's
# Tracer proxies buffers, a deliberate difference (README, docs/architecture.md),
# so the oracle is torch.fx with buffer proxying switched on; set this to False to
# compare against torch.fx as shipped.
ORACLE_PROXIES_BUFFERS = True


class _BufferProxyingTracer(torch.fx.Tracer):
    proxy_buffer_attributes = True


def _symbolic_trace_proxying_buffers(root, concrete_args=None):
    tracer = _BufferProxyingTracer()
    graph = tracer.trace(root, concrete_args)
    name = root.__class__.__name__ if isinstance(root, torch.nn.Module) else root.__name__
    return torch.fx.GraphModule(tracer.root, graph, name)


ORACLE = SimpleNamespace(
    name="torch.fx",
    symbolic_trace=(
        _symbolic_trace_proxying_buffers if ORACLE_PROXIES_BUFFERS else torch.fx.symbolic_trace
    ),
    Tracer=_BufferProxyingTracer if ORACLE_PROXIES_BUFFERS else torch.fx.Tracer,
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
