"""Mixed-integer programs built row by row and solved by HiGHS, quietly and
deterministically.

Every MILP the compiler solves goes through :class:`MilpBuilder`, so the
solver's settings live here once:

- **Deterministic budget.** HiGHS runs on one thread and stops after
  ``node_limit`` branch-and-bound nodes, a count that does not depend on how
  loaded the machine is; the same problem gives the same answer everywhere.
  ``time_limit`` (wall-clock seconds) is only a safety net, and a result
  that hit it says so in its status.
- **Nothing on stdout.** HiGHS prints its banner when the first solver
  object of a process is constructed, before any option can silence it, so
  the construction runs with the process's standard output pointed at
  ``/dev/null``. Its log is off unless asked for, and then goes to stderr
  through HiGHS's logging callback: stdout carries only the compiler's
  output (IR, trace JSON).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np

INFINITY = highspy.kHighsInf
"""An absent bound."""

DEFAULT_NODE_LIMIT = 20_000
"""Branch-and-bound nodes per problem by default: far above what the
compiler's problems need (every problem of ``cim-bench --suite full
--strategies cmswitch`` closes within one node), small enough that a
pathological problem ends in seconds."""

DEFAULT_TIME_LIMIT = 120.0
"""Wall-clock seconds per problem by default, a safety net behind the node
budget: reaching it is reported, since it makes the result machine-dependent."""

OPTIMAL = "optimal"
NODE_LIMIT = "node limit"
TIME_LIMIT = "time limit"


@dataclass(frozen=True)
class SolverBudget:
    """How long HiGHS may search one problem, and whether it may talk."""

    node_limit: int = DEFAULT_NODE_LIMIT
    time_limit: float = DEFAULT_TIME_LIMIT
    mip_gap: float = 1e-3
    log: bool = False
    """Send HiGHS's log to stderr."""


@dataclass(frozen=True)
class SolveOutcome:
    """What HiGHS returned for one problem."""

    status: str
    """``optimal``, ``node limit``, ``time limit`` (both with the best
    incumbent, if any), ``infeasible``, or another HiGHS model status."""
    values: list[float] | None
    """Column values of the best solution found; None if there is none."""
    gap: float
    nodes: int

    @property
    def limit_hit(self) -> bool:
        return self.status in (NODE_LIMIT, TIME_LIMIT)


def _flush_c_stdout() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _stdout_redirected(target_fd: int) -> Generator[None]:
    """Point file descriptor 1 at ``target_fd`` for the duration, catching
    what C code prints (Python's own ``sys.stdout`` is flushed first)."""
    sys.stdout.flush()
    _flush_c_stdout()
    saved = os.dup(1)
    try:
        os.dup2(target_fd, 1)
        yield
        _flush_c_stdout()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_highs(log: bool = False) -> highspy.Highs:
    """A HiGHS instance that has printed nothing on stdout and logs to stderr
    only if ``log``."""
    sink = os.dup(2) if log else os.open(os.devnull, os.O_WRONLY)
    try:
        with _stdout_redirected(sink):
            highs = highspy.Highs()
    finally:
        os.close(sink)
    highs.setOptionValue("output_flag", log)
    highs.setOptionValue("log_to_console", False)
    if log:
        highs.cbLogging.subscribe(_log_to_stderr)
    return highs


def _log_to_stderr(event: highspy.HighsCallbackEvent) -> None:
    sys.stderr.write(event.message)


@dataclass
class MilpBuilder:
    """A minimisation MILP under construction, row by row (HiGHS's row-wise
    format)."""

    cost: list[float] = field(default_factory=lambda: [])
    lower: list[float] = field(default_factory=lambda: [])
    upper: list[float] = field(default_factory=lambda: [])
    integer: list[bool] = field(default_factory=lambda: [])
    row_lower: list[float] = field(default_factory=lambda: [])
    row_upper: list[float] = field(default_factory=lambda: [])
    starts: list[int] = field(default_factory=lambda: [])
    index: list[int] = field(default_factory=lambda: [])
    value: list[float] = field(default_factory=lambda: [])

    def var(
        self, lower: float, upper: float, cost: float = 0.0, integer: bool = False
    ) -> int:
        """A new column; returns its index."""
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(
        self, terms: Sequence[tuple[int, float]], lower: float, upper: float
    ) -> None:
        """``lower <= sum(coefficient * column) <= upper``; repeated columns
        add up."""
        merged: dict[int, float] = {}
        for column, coefficient in terms:
            merged[column] = merged.get(column, 0.0) + coefficient
        self.starts.append(len(self.index))
        for column, coefficient in merged.items():
            if coefficient != 0.0:
                self.index.append(column)
                self.value.append(coefficient)
        self.row_lower.append(lower)
        self.row_upper.append(upper)

    def _lp(self, offset: float) -> highspy.HighsLp:
        lp = highspy.HighsLp()
        lp.num_col_ = len(self.cost)
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.array(self.cost, dtype=np.float64)
        lp.col_lower_ = np.array(self.lower, dtype=np.float64)
        lp.col_upper_ = np.array(self.upper, dtype=np.float64)
        lp.row_lower_ = np.array(self.row_lower, dtype=np.float64)
        lp.row_upper_ = np.array(self.row_upper, dtype=np.float64)
        lp.offset_ = offset
        matrix = lp.a_matrix_
        matrix.format_ = highspy.MatrixFormat.kRowwise
        matrix.num_col_ = lp.num_col_
        matrix.num_row_ = lp.num_row_
        matrix.start_ = np.array([*self.starts, len(self.index)], dtype=np.int32)
        matrix.index_ = np.array(self.index, dtype=np.int32)
        matrix.value_ = np.array(self.value, dtype=np.float64)
        lp.a_matrix_ = matrix
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in self.integer
        ]
        return lp

    def solve(
        self,
        budget: SolverBudget,
        offset: float = 0.0,
        start: Sequence[float] | None = None,
    ) -> SolveOutcome:
        """Minimise within ``budget``, from the feasible ``start`` if given."""
        highs = new_highs(budget.log)
        highs.setOptionValue("threads", 1)
        highs.setOptionValue("random_seed", 0)
        highs.setOptionValue("mip_max_nodes", int(budget.node_limit))
        highs.setOptionValue("time_limit", max(0.0, float(budget.time_limit)))
        highs.setOptionValue("mip_rel_gap", max(0.0, float(budget.mip_gap)))
        if highs.passModel(self._lp(offset)) == highspy.HighsStatus.kError:
            return SolveOutcome("model error", None, INFINITY, 0)
        if start is not None:
            solution = highspy.HighsSolution()
            solution.col_value = np.array(start, dtype=np.float64)
            highs.setSolution(solution)
        if highs.run() == highspy.HighsStatus.kError:
            return SolveOutcome("solver error", None, INFINITY, 0)
        info = highs.getInfo()
        nodes = int(info.mip_node_count)
        status = _status(highs, nodes, budget)
        if info.primal_solution_status != 2:  # kSolutionStatusFeasible
            return SolveOutcome(status, None, INFINITY, nodes)
        values = [float(v) for v in highs.getSolution().col_value]
        return SolveOutcome(status, values, float(info.mip_gap), nodes)


def _status(highs: highspy.Highs, nodes: int, budget: SolverBudget) -> str:
    model_status = highs.getModelStatus()
    if model_status == highspy.HighsModelStatus.kOptimal:
        return OPTIMAL
    if model_status == highspy.HighsModelStatus.kTimeLimit:
        return TIME_LIMIT
    if (
        model_status == highspy.HighsModelStatus.kSolutionLimit
        and nodes >= budget.node_limit
    ):
        return NODE_LIMIT
    return highs.modelStatusToString(model_status).lower()
