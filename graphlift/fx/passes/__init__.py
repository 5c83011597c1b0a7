"""The torch.fx passes people use most, on graphlift graphs:
``split_module``, ``ShapeProp`` (shape propagation), and the subgraph rewriter
(``graphlift.fx.subgraph_rewriter``)."""

from graphlift.fx.passes.split_module import split_module
from graphlift.ir.shape_prop import ShapeProp, TensorMetadata

__all__ = ["ShapeProp", "TensorMetadata", "split_module"]
