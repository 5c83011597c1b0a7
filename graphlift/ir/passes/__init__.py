"""Graph passes, one per module. Each takes a Graph, edits it in place and
returns how many nodes it changed."""

from graphlift.ir.effects import has_side_effect, is_pure, may_mutate, register_side_effect
from graphlift.ir.passes.cse import eliminate_common_subexpressions
from graphlift.ir.passes.dce import eliminate_dead_code

__all__ = [
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "has_side_effect",
    "is_pure",
    "may_mutate",
    "register_side_effect",
]
