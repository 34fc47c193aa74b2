"""Names of the schedule's tensors, weights and constants."""

from __future__ import annotations

from typing import cast

from xdsl.dialects.builtin import (
    TensorType,
)
from xdsl.ir import Attribute, SSAValue

from cimflow.cimdialect import cim_graph, cim_meta
from cimflow.lowering.state import (
    BuilderState,
)


class Naming(BuilderState):
    """Unique names for tensors and their declarations."""

    def unique_name(self, base: str) -> str:
        # names only ever join used_names, so the first free suffix never
        # lies below the one found last time for the same base
        suffix = self.name_suffixes.get(base, 0)
        name = base if suffix == 0 else f"{base}.{suffix}"
        while name in self.used_names:
            suffix += 1
            name = f"{base}.{suffix}"
        self.name_suffixes[base] = suffix
        self.used_names.add(name)
        return name

    def declare(self, value: SSAValue, preferred: str | None = None) -> str:
        """Name an activation tensor and declare it in the schedule (model
        inputs and outputs keep their ONNX names)."""
        base = preferred or self.output_names.get(value) or value.name_hint or "t"
        name = self.unique_name(base)
        self.names[value] = name
        self.values_by_name[name] = value
        value_type = cast(TensorType[Attribute], value.type)
        self.decls.append(
            cim_meta.TensorDeclOp(name, value_type, self.tensor_bytes(value))
        )
        return name

    def declaration(self, name: str) -> cim_meta.TensorDeclOp:
        for decl in self.decls:
            if isinstance(decl, cim_meta.TensorDeclOp) and decl.tensor.data == name:
                return decl
        raise AssertionError(name)

    def operand_name(self, value: SSAValue) -> str:
        """The name a meta-op uses for an operand: tensor, weight or constant."""
        owner = value.owner
        if isinstance(owner, cim_graph.WeightOp):
            return owner.weight_name.data
        if isinstance(owner, cim_graph.ConstantOp) and value not in self.names:
            name = self.unique_name(value.name_hint or "const")
            self.names[value] = name
            self.decls.append(cim_meta.ConstantDeclOp(name, owner.value))
        return self.names[value]
