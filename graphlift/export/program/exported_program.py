"""`ExportedProgram`: a functional ATen graph with its signature and state.

Mirrors ``torch.export.ExportedProgram``: ``graph_module``/``graph``,
``graph_signature``, ``state_dict`` (parameters and persistent buffers by their
original names), ``constants`` (lifted tensors and non-persistent buffers),
``range_constraints``, ``example_inputs``, ``module_call_graph``, and
``module()`` for a runnable module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, cast

import torch

from graphlift.errors import reports_internal_errors
from graphlift.export.program import decompositions
from graphlift.export.program.call_graph import ModuleCallEntry, renamed_call_graph
from graphlift.export.program.signature import (
    BackwardSignature,
    ExportGraphSignature,
    SymFloatArgument,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.program.verifier import Verifier, verify
from graphlift.export.runtime.unlift import ExportedModule, unlift
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.pytree import TreeSpec
from graphlift.symbolic import ShapeEnv
from graphlift.trace.block_inlining import inline_blocks


@dataclass(frozen=True)
class CallSpec:
    """The pytree structure of the program's inputs and outputs (torch's ``ep.call_spec``)."""

    in_spec: TreeSpec | None
    out_spec: TreeSpec | None


class ExportedProgram:
    #: torch.export's dialect name for programs at the ATen level (also after decomposition)
    dialect = "ATEN"
    #: the verifiers this program passes (torch's ``ep.verifiers``); ``validate()`` runs them
    verifiers = (Verifier,)

    def __init__(
        self,
        *,
        graph_module: GraphModule,
        graph_signature: ExportGraphSignature,
        state_dict: dict[str, torch.Tensor],
        constants: dict[str, torch.Tensor],
        range_constraints: dict[str, Any],
        example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
        module_call_graph: tuple[ModuleCallEntry, ...],
        shape_env: ShapeEnv | None = None,
        specializations: tuple[Any, ...] = (),
        draft_report: Any = None,
        python_guards: tuple[Any, ...] = (),
    ) -> None:
        self.graph_module = graph_module
        self.graph_signature = graph_signature
        self.state_dict = state_dict
        self.constants = constants
        self.range_constraints = range_constraints
        self.example_inputs = example_inputs
        self.module_call_graph = module_call_graph
        #: Dim.AUTO dimensions that became static or narrower, with the line that did it.
        self.specializations = specializations
        #: What draft_export had to refine or specialize (None for export()).
        self.draft_report: Any = draft_report
        self._report: Any = draft_report  # torch.export's name for the same report
        self._shape_env = shape_env
        #: strict=True: the Python values (globals, closure cells) the capture read;
        #: module() refuses to run when one has changed (StaleGlobalError).
        self.python_guards = python_guards

    @property
    def graph(self) -> Graph:
        return self.graph_module.graph

    @property
    def backward_signature(self) -> BackwardSignature | None:
        """Loss and gradient outputs of a joint program; None for a forward-only one."""
        return self.graph_signature.backward_signature

    @property
    def call_spec(self) -> CallSpec:
        if not self.module_call_graph:
            return CallSpec(None, None)
        entry = self.module_call_graph[0]
        return CallSpec(entry.in_spec, entry.out_spec)

    @property
    def verifier(self) -> type[Verifier]:
        return self.verifiers[0]

    @property
    def tensor_constants(self) -> dict[str, torch.Tensor]:
        """torch.export's older name for ``constants``."""
        return self.constants

    def validate(self) -> None:
        """Run the verifier again (after editing the graph by hand); raises VerificationError."""
        verify(self)

    @property
    def call_spec_in(self) -> TreeSpec:
        return cast(TreeSpec, self.module_call_graph[0].in_spec)  # the root entry has both specs

    @property
    def call_spec_out(self) -> TreeSpec:
        return cast(TreeSpec, self.module_call_graph[0].out_spec)

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.graph_signature.parameters:
            yield name, self.state_dict[name]

    def parameters(self) -> Iterator[torch.Tensor]:
        for _, value in self.named_parameters():
            yield value

    def named_buffers(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.graph_signature.buffers:
            yield name, self.state_dict[name] if name in self.state_dict else self.constants[name]

    def buffers(self) -> Iterator[torch.Tensor]:
        for _, value in self.named_buffers():
            yield value

    @reports_internal_errors
    def module(self) -> ExportedModule:
        """A runnable module: checks its inputs, then runs the graph with the program's state."""
        return unlift(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("an ExportedProgram is not callable; call ep.module()(...) instead")

    def __str__(self) -> str:
        graph = "\n".join(f"    {line}" for line in str(self.graph).splitlines())
        for name, body in self.graph_module.named_children():  # control-flow subgraphs
            graph += f"\n\n    {name}:\n" + "\n".join(
                f"        {line}" for line in str(body.graph).splitlines()
            )
        signature = "\n".join(f"    {line}" for line in str(self.graph_signature).splitlines())
        ranges = ", ".join(f"{name}: {r}" for name, r in self.range_constraints.items())
        text = (
            f"ExportedProgram:\n{graph}\n\nGraph signature:\n{signature}\n\n"
            f"Range constraints: {{{ranges}}}\n"
        )
        if self.specializations:
            text += "Specializations:\n" + "".join(f"    {s}\n" for s in self.specializations)
        return text

    def __repr__(self) -> str:
        return f"<ExportedProgram with {len(self.graph.nodes)} nodes>"

    @reports_internal_errors
    def inline_subgraphs(self) -> ExportedProgram:
        """The flat program: every call of a shared block body (``reuse_blocks``,
        issue 18) replaced by the body's nodes, giving the graph an export with
        ``reuse_blocks=False`` gives; this one is left unchanged."""
        module, renamed = inline_blocks(self.graph_module)
        names = {node.name: node.name for node in module.graph.nodes} | renamed
        outputs = [
            replace(spec, arg=type(spec.arg)(names[spec.arg.name]))
            if isinstance(spec.arg, TensorArgument | SymIntArgument | SymFloatArgument) else spec
            for spec in self.graph_signature.output_specs
        ]  # fmt: skip
        return ExportedProgram(
            graph_module=module,
            graph_signature=replace(self.graph_signature, output_specs=tuple(outputs)),
            state_dict=dict(self.state_dict),
            constants=dict(self.constants),
            range_constraints=dict(self.range_constraints),
            example_inputs=self.example_inputs,
            module_call_graph=renamed_call_graph(self.module_call_graph, names),
            shape_env=self._shape_env,
            specializations=self.specializations,
        )

    @reports_internal_errors
    def run_decompositions(
        self, decomp_table: dict[Any, Callable[..., Any]] | None = None
    ) -> ExportedProgram:
        """A new program in core ATen (or with the ops ``decomp_table`` decomposes
        rewritten); this one is left unchanged. See ``graphlift.default_decompositions``."""
        return decompositions.run_decompositions(self, decomp_table)
