"""The torch.fx passes people use most, on graphlift graphs:
``split_module``, ``ShapeProp`` (shape propagation), ``FxGraphDrawer`` (pictures
through graphviz, ``graphlift.fx.passes.graph_drawer``) and the subgraph rewriter
(``graphlift.fx.subgraph_rewriter``)."""

from graphlift.fx.passes.graph_drawer import FxGraphDrawer
from graphlift.fx.passes.split_module import split_module
from graphlift.ir.shape_prop import ShapeProp, TensorMetadata

__all__ = ["FxGraphDrawer", "ShapeProp", "TensorMetadata", "split_module"]
