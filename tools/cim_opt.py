"""``cim-opt``: xDSL's optimizer driver with ONNX input and our passes.

Everything ``xdsl-opt`` does, plus: ``.onnx`` files as input (``--dim
NAME=VALUE`` fixes symbolic input dimensions), the ``cim-trace`` output
target, one-line errors without tracebacks, and an output file that is only
written when the whole run succeeds.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from cimflow.cli import add_target_overrides, exit_status, raise_usage_errors
from cimflow.errors import CimError
from cimflow.hw_targets import overridden
from cimflow.output_files import write_output
from cimflow.pipeline_spec import checked_specs, pipeline_text


def parse_dims(specs: Sequence[str]) -> dict[str, int]:
    """``["batch=4", "sequence=128"]`` -> ``{"batch": 4, "sequence": 128}``."""
    dims: dict[str, int] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise CimError(
                f"--dim '{spec}': expected NAME=VALUE with a positive integer"
            )
        dims[name] = int(value)
    return dims


class CimOptMain(xDSLOptMain):
    """The ``cim-opt`` command."""

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.prog = "cim-opt"
        raise_usage_errors(arg_parser)
        arg_parser.add_argument(
            "--dim",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="value of a symbolic ONNX input dimension (repeatable)",
        )
        arg_parser.add_argument(
            "--list-passes",
            action="store_true",
            help="list cimflow's passes with their options (type, default, "
            "meaning) and exit",
        )
        add_target_overrides(arg_parser)

    def setup_pipeline(self) -> None:
        specs = checked_specs(self.args.passes, self.available_passes)
        self.args.passes = pipeline_text(specs)
        super().setup_pipeline()

    def register_all_frontends(self) -> None:
        super().register_all_frontends()
        self.available_frontends["onnx"] = self._import_onnx

    def _import_onnx(self, stream: IO[bytes]) -> ModuleOp:
        from cimflow.frontend import onnx_frontend

        stream.close()
        if self.args.input_file is None:
            raise CimError("ONNX input must be a file, not standard input")
        return onnx_frontend(self.args.input_file, parse_dims(self.args.dim))

    def run(self) -> None:
        if self.args.list_passes:
            sys.stdout.write(describe_passes())
            return
        with overridden(self.args.set):
            self._run()

    def _run(self) -> None:
        from cimflow.frontend.model_file import check_readable_file

        parse_dims(self.args.dim)
        if self.args.input_file is not None:
            check_readable_file(self.args.input_file)
        source = self.args.input_file
        frontend = self.args.frontend or (source and Path(source).suffix[1:])
        if self.args.dim and frontend != "onnx":
            raise CimError("--dim applies only to ONNX input (a .onnx file)")
        chunks, file_extension = self.prepare_input()
        buffered: list[str] = []

        def emit(text: str) -> None:
            if self.args.output_file is None:
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                buffered.append(text)

        for index, (chunk, offset) in enumerate(chunks):
            try:
                if index:
                    emit("// -----\n")
                module = self.parse_chunk(chunk, file_extension, offset)
                if module is not None:
                    self.apply_passes(module)
                    emit(self.output_resulting_program(module))
            except ParseError as error:
                if not self.args.parsing_diagnostics:
                    raise
                emit(f"{error}\n")
            except DiagnosticException as error:
                if not self.args.verify_diagnostics:
                    raise
                emit(f"{error}\n")
            finally:
                chunk.close()
        if self.args.output_file is not None:
            write_output(self.args.output_file, "".join(buffered))


def _field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a dataclass's fields (its source)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    cls_def = tree.body[0] if tree.body else None
    body = cls_def.body if isinstance(cls_def, ast.ClassDef) else []
    for field, after in itertools.pairwise(body):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[field.target.id] = " ".join(after.value.value.split())
    return docs


def describe_passes() -> str:
    """cimflow's passes, each with its summary and options: name, type,
    default and the option's own documentation."""
    from cimflow.passes import get_all_passes

    lines: list[str] = []
    for name, factory in get_all_passes().items():
        cls = factory()
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        lines += textwrap.wrap(f"{name}: {summary}", 79, subsequent_indent="    ")
        docs = _field_docs(cls)
        for field in dataclasses.fields(cls):
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            lines.append(f"  {field.name}: {kind} = {field.default!r}")
            if field.name in docs:
                lines += [
                    f"      {line}" for line in textwrap.wrap(docs[field.name], 72)
                ]
        lines.append("")
    return "\n".join(lines)


def _one_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cim-opt`` console script."""
    try:
        CimOptMain(description="cimflow CIM compiler driver", args=argv).run()
    except CimError as error:
        print(f"cim-opt: error: {error}", file=sys.stderr)
        return exit_status(error)
    except ParseError as error:
        print(f"cim-opt: error: {error}", file=sys.stderr)
        return 1
    except (DiagnosticException, ValueError, OSError) as error:
        print(f"cim-opt: error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
