"""The graph signature of an exported program (torch.export's names and kinds).

A program's graph takes its parameters, buffers and constants as inputs
(they are *lifted*), then the user's inputs; it returns mutated state first,
then the user's outputs. The signature says which placeholder and which output
is which. All values are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto


class InputKind(Enum):
    USER_INPUT = auto()
    PARAMETER = auto()
    BUFFER = auto()
    CONSTANT_TENSOR = auto()
    CUSTOM_OBJ = auto()
    TOKEN = auto()


class OutputKind(Enum):
    USER_OUTPUT = auto()
    LOSS_OUTPUT = auto()
    BUFFER_MUTATION = auto()
    GRADIENT_TO_PARAMETER = auto()
    GRADIENT_TO_USER_INPUT = auto()
    USER_INPUT_MUTATION = auto()
    TOKEN = auto()
    PARAMETER_MUTATION = auto()


#: Outputs ``module()`` returns to the caller (the others are written back):
#: user outputs, and a joint program's loss and gradients.
RETURNED_KINDS = frozenset({
    OutputKind.USER_OUTPUT, OutputKind.LOSS_OUTPUT,
    OutputKind.GRADIENT_TO_PARAMETER, OutputKind.GRADIENT_TO_USER_INPUT,
})  # fmt: skip


@dataclass(frozen=True)
class TensorArgument:
    name: str


@dataclass(frozen=True)
class SymIntArgument:
    name: str


@dataclass(frozen=True)
class SymFloatArgument:
    """A symbolic float output (``x.item()`` of a floating-point tensor)."""

    name: str


@dataclass(frozen=True)
class ConstantArgument:
    """A non-tensor input or output fixed at export time (an int, a flag, None)."""

    name: str
    value: int | float | bool | str | None


Argument = TensorArgument | SymIntArgument | SymFloatArgument | ConstantArgument


@dataclass(frozen=True)
class InputSpec:
    kind: InputKind
    arg: Argument
    target: str | None  # state_dict / constants key for lifted inputs
    persistent: bool | None = None  # buffers only


@dataclass(frozen=True)
class OutputSpec:
    kind: OutputKind
    arg: Argument
    target: str | None  # what a mutation output writes to


class OutputSource(Enum):
    """Where a user output's value comes from (``ExportGraphSignature.output_provenance``)."""

    COMPUTED = auto()  # made by the graph (including views of inputs and updated inputs)
    USER_INPUT = auto()  # a user input returned as it came in
    PARAMETER = auto()  # a parameter returned as is
    BUFFER = auto()
    CONSTANT_TENSOR = auto()
    CONSTANT = auto()  # a Python value fixed at export time


#: Input kinds whose placeholder, returned as is, makes an output of this source.
_PASSED_THROUGH = {
    InputKind.USER_INPUT: OutputSource.USER_INPUT,
    InputKind.PARAMETER: OutputSource.PARAMETER,
    InputKind.BUFFER: OutputSource.BUFFER,
    InputKind.CONSTANT_TENSOR: OutputSource.CONSTANT_TENSOR,
}


@dataclass(frozen=True)
class OutputProvenance:
    """One flat user output: its source, and which input, state or value it is."""

    source: OutputSource
    input: str | None = None  # the placeholder passed through
    target: str | None = None  # state_dict / constants key, for state passed through
    value: int | float | bool | str | None = None  # for CONSTANT

    def __str__(self) -> str:
        if self.source is OutputSource.CONSTANT:
            return f"CONSTANT {self.value!r}"
        if self.input is None:
            return self.source.name
        return f"{self.source.name} {self.input}" + (f" ({self.target})" if self.target else "")


@dataclass(frozen=True)
class BackwardSignature:
    """The backward half of a joint program, as torch's AOT signature names it:
    output name -> parameter (state_dict name) or user input (placeholder name)
    it is the gradient of, and the name of the loss output."""

    gradients_to_parameters: dict[str, str]
    gradients_to_user_inputs: dict[str, str]
    loss_output: str


@dataclass(frozen=True)
class ExportGraphSignature:
    input_specs: tuple[InputSpec, ...]
    output_specs: tuple[OutputSpec, ...]

    def _inputs(self, *kinds: InputKind) -> tuple[InputSpec, ...]:
        return tuple(s for s in self.input_specs if s.kind in kinds)

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(str(s.target) for s in self._inputs(InputKind.PARAMETER))

    @property
    def buffers(self) -> tuple[str, ...]:
        return tuple(str(s.target) for s in self._inputs(InputKind.BUFFER))

    @property
    def non_persistent_buffers(self) -> tuple[str, ...]:
        return tuple(str(s.target) for s in self._inputs(InputKind.BUFFER) if s.persistent is False)

    @property
    def lifted_tensor_constants(self) -> tuple[str, ...]:
        return tuple(str(s.target) for s in self._inputs(InputKind.CONSTANT_TENSOR))

    @property
    def user_inputs(self) -> tuple[str | int | float | bool | None, ...]:
        return tuple(_user_value(s.arg) for s in self._inputs(InputKind.USER_INPUT))

    @property
    def user_outputs(self) -> tuple[str | int | float | bool | None, ...]:
        kinds = (OutputKind.USER_OUTPUT, OutputKind.LOSS_OUTPUT)
        outputs = (s for s in self.output_specs if s.kind in kinds)
        return tuple(_user_value(s.arg) for s in outputs)

    @property
    def backward_signature(self) -> BackwardSignature | None:
        """Which outputs of a joint program (``export_forward_backward``) are the loss
        and the gradients; None for a forward-only program."""
        loss = [s.arg.name for s in self.output_specs if s.kind is OutputKind.LOSS_OUTPUT]
        if not loss:
            return None
        return BackwardSignature(
            gradients_to_parameters=self._outputs_to(OutputKind.GRADIENT_TO_PARAMETER),
            gradients_to_user_inputs=self._outputs_to(OutputKind.GRADIENT_TO_USER_INPUT),
            loss_output=loss[0],
        )

    def _outputs_to(self, kind: OutputKind) -> dict[str, str]:
        return {s.arg.name: str(s.target) for s in self.output_specs if s.kind is kind}

    @property
    def inputs_to_parameters(self) -> dict[str, str]:
        return {s.arg.name: str(s.target) for s in self._inputs(InputKind.PARAMETER)}

    @property
    def inputs_to_buffers(self) -> dict[str, str]:
        return {s.arg.name: str(s.target) for s in self._inputs(InputKind.BUFFER)}

    @property
    def inputs_to_lifted_tensor_constants(self) -> dict[str, str]:
        return {s.arg.name: str(s.target) for s in self._inputs(InputKind.CONSTANT_TENSOR)}

    @property
    def buffers_to_mutate(self) -> dict[str, str]:
        kinds = (OutputKind.BUFFER_MUTATION,)
        return {s.arg.name: str(s.target) for s in self.output_specs if s.kind in kinds}

    @property
    def parameters_to_mutate(self) -> dict[str, str]:
        kinds = (OutputKind.PARAMETER_MUTATION,)
        return {s.arg.name: str(s.target) for s in self.output_specs if s.kind in kinds}

    @property
    def user_inputs_to_mutate(self) -> dict[str, str]:
        kinds = (OutputKind.USER_INPUT_MUTATION,)
        return {s.arg.name: str(s.target) for s in self.output_specs if s.kind in kinds}

    @property
    def output_provenance(self) -> tuple[OutputProvenance, ...]:
        """For each flat user output, in order: computed by the graph, an input
        (or parameter, buffer, constant tensor) returned unchanged, or a Python
        constant. A caller can skip copying pass-through outputs or alias them."""
        inputs = {s.arg.name: s for s in self.input_specs}
        found = []
        for spec in self.output_specs:
            if spec.kind is not OutputKind.USER_OUTPUT:
                continue
            source = inputs.get(spec.arg.name)
            if isinstance(spec.arg, ConstantArgument):
                found.append(OutputProvenance(OutputSource.CONSTANT, value=spec.arg.value))
            elif source is None or source.kind not in _PASSED_THROUGH:
                found.append(OutputProvenance(OutputSource.COMPUTED))
            else:
                found.append(
                    OutputProvenance(_PASSED_THROUGH[source.kind], source.arg.name, source.target)
                )
        return tuple(found)

    def __str__(self) -> str:
        lines = ["# inputs"]
        lines += [_describe(s.arg, s.kind.name, s.target) for s in self.input_specs]
        lines += ["", "# outputs"]
        lines += [_describe(s.arg, s.kind.name, s.target) for s in self.output_specs]
        return "\n".join(lines)


def _user_value(arg: Argument) -> str | int | float | bool | None:
    return arg.value if isinstance(arg, ConstantArgument) else arg.name


def _describe(arg: Argument, kind: str, target: str | None) -> str:
    name = f"{arg.name}={arg.value!r}" if isinstance(arg, ConstantArgument) else arg.name
    return f"{name}: {kind}" + (f" target={target!r}" if target is not None else "")
