"""Zero skipping of input bit-planes (CIMinus's input bit-sparsity,
``ciminus.md`` §10 invariant 8): a measured share ``s`` of zero planes cuts
an MVM's bit-plane cycles by exactly ``(1 - s)`` and adds zero-detection
energy, and a share ``g`` of planes zero on a detector's rows idles that
share of array and driver work; the profile comes from the functional
executor (``cim-verify --zero-planes``), ``cim-input-sparsity`` writes it
on the MVMs, and the lowering, the simulator and the lower bound follow it;
values stay exact."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import cast

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from cimflow.analysis.lower_bound import latency_lower_bound
from cimflow.analysis.zero_planes import ZeroPlaneProfile, read_profile
from cimflow.cimsim.engine import op_costs, simulate
from cimflow.cimsim.trace import MvmOp, parse_trace
from cimflow.cost_model import ZeroShares, mvm_cost, mvm_cycles, with_mvm_choices
from cimflow.errors import CimError
from cimflow.frontend import import_onnx
from cimflow.hw_targets import load_target, overridden
from cimflow.passes.cim_input_sparsity import CimInputSparsityPass
from cimflow.passes.convert_graph_to_tile import ConvertGraphToTilePass
from cimflow.passes.trace_target import build_trace
from cimflow.tools import cim_verify
from cimflow.tools.cim_verify import compile_model, module_trace, verify_trace

MODEL = Path(__file__).resolve().parents[2] / "tools" / "models" / "resnet_tiny.onnx"


def _pipeline(profile: Path, objective: str = "always") -> str:
    return (
        "convert-graph-to-tile{target=ciminus},"
        f'cim-input-sparsity{{profile="{profile}" objective={objective}}},'
        "cim-static-allocate,convert-tile-to-meta"
    )


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.875])
def test_skipped_planes_cut_the_bit_plane_cycles_exactly(share: float) -> None:
    hw = load_target("ciminus")
    interval = hw.array.mvm_issue_interval_cycles
    vectors, arrays, rows, cols = 16, 3, 600, 32
    groups = min(0.9, share + 0.1)
    dense = mvm_cost(hw, arrays, vectors, rows, cols)
    found = ZeroShares(share, groups)
    skipping = mvm_cost(with_mvm_choices(hw, 0, found), arrays, vectors, rows, cols)
    plane_cycles = vectors * interval  # one word-line pass of 1024 rows
    assert dense.cycles - skipping.cycles == plane_cycles * share
    assert skipping.energy_pj["adc"] == pytest.approx(
        dense.energy_pj["adc"] * (1 - share)
    )
    for component in ("array", "dac"):
        assert skipping.energy_pj[component] == pytest.approx(
            dense.energy_pj[component] * (1 - groups)
        )
    detectors = math.ceil(rows / hw.array.zero_detect_rows)  # 19 of 32 rows
    detections = arrays * vectors * hw.input_passes * detectors
    assert skipping.energy_pj["zero_detect"] == pytest.approx(
        detections * hw.energy.zero_detect_pj
    )
    assert skipping.energy_pj["zero_detect"] > 0
    assert "zero_detect" not in dense.energy_pj


def test_skipping_needs_zero_detectors_and_shares_below_one() -> None:
    with pytest.raises(ValueError, match="no zero detectors"):
        with_mvm_choices(load_target("tiny"), 0, ZeroShares(0.5, 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ZeroShares(1.0, 0.5)
    hw = load_target("ciminus")
    nothing = with_mvm_choices(hw, 0, ZeroShares(0.0, 0.0))
    assert mvm_cycles(nothing, 4, 10, 10) == mvm_cycles(hw, 4, 10, 10)


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet_tiny's profile on ciminus, calibrated so that ReLU outputs
    get unsigned codes (whose high planes are often zero)."""
    path = tmp_path_factory.mktemp("planes") / "planes.json"
    status = cim_verify.main(
        [
            str(MODEL),
            "--target",
            "ciminus",
            "--mode",
            "quantized",
            "--calibrate",
            "2",
            "--zero-planes",
            str(path),
            "-o",
            str(path.with_suffix(".txt")),
        ]
    )
    assert status == 0
    return path


def test_the_executor_counts_the_planes_the_arrays_drive(profile: Path) -> None:
    measured = read_profile(profile)
    assert measured.target == "ciminus"
    trace = module_trace(compile_model(MODEL, "ciminus"))
    weights = {op.weight for op in trace.ops if isinstance(op, MvmOp)}
    assert set(measured.counts) == weights
    hw = load_target("ciminus")
    for count in measured.counts.values():
        assert 0 <= count.zero <= count.planes
        assert count.planes % hw.input_passes == 0
        assert count.groups >= count.planes and count.zero_groups >= count.zero
    assert any(count.zero > 0 for count in measured.counts.values())
    # a detector's 32 rows are zero far more often than a whole pass
    assert any(c.zero_groups > 2 * c.zero for c in measured.counts.values())


def test_the_simulator_skips_what_the_profile_measured(profile: Path) -> None:
    measured = read_profile(profile)
    hw = load_target("ciminus")
    dense = module_trace(compile_model(MODEL, "ciminus"))
    skipping = module_trace(compile_model(MODEL, "ciminus", _pipeline(profile)))
    dense_costs, skipping_costs = op_costs(dense), op_costs(skipping)
    dense_mvms = [op for op in dense.ops if isinstance(op, MvmOp)]
    mvms = [op for op in skipping.ops if isinstance(op, MvmOp)]
    assert [op.weight for op in mvms] == [op.weight for op in dense_mvms]
    skipped = 0
    for plain, op in zip(dense_mvms, mvms, strict=True):
        assert op.zero_shares == measured.shares(op.weight)
        share = op.zero_shares.planes if op.zero_shares else 0.0
        passes = math.ceil(op.rows / hw.array.active_rows)
        plane_cycles = passes * op.vectors * hw.array.mvm_issue_interval_cycles
        compute = mvm_cost(
            with_mvm_choices(hw, 0, op.zero_shares),
            1,
            op.vectors,
            op.rows,
            op.cols,
        )
        assert compute.cycles == mvm_cost(
            hw, 1, plain.vectors, plain.rows, plain.cols
        ).cycles - math.floor(share * plane_cycles)
        arrays = sum(stop - start for start, stop in op.arrays)
        whole = mvm_cost(
            with_mvm_choices(hw, 0, op.zero_shares),
            arrays,
            op.vectors,
            op.rows,
            op.cols,
        )
        for component, pj in whole.energy_pj.items():
            # an MVM of another's shape but other shares is costed on its own
            assert skipping_costs[op.id].energy_pj[component] == pytest.approx(pj)
        assert skipping_costs[op.id].cycles <= dense_costs[plain.id].cycles
        skipped += dense_costs[plain.id].cycles - skipping_costs[op.id].cycles
    assert skipped > 0
    stats = simulate(skipping).stats
    assert stats.energy_pj["zero_detect"] > 0
    assert stats.makespan_cycles <= simulate(dense).stats.makespan_cycles
    tiled = import_onnx(MODEL)
    ConvertGraphToTilePass("ciminus").apply(Context(), tiled)
    CimInputSparsityPass(profile=str(profile), objective="always").apply(
        Context(), tiled
    )
    assert latency_lower_bound(tiled, hw).cycles <= stats.makespan_cycles


def test_skipping_changes_no_value(profile: Path) -> None:
    trace = module_trace(
        compile_model(MODEL, "ciminus", _pipeline(profile)), str(MODEL)
    )
    assert any(isinstance(op, MvmOp) and op.zero_shares for op in trace.ops)
    report = verify_trace(trace, MODEL, "exact")
    assert report.passed


def test_the_objective_chooses_the_mvms(profile: Path) -> None:
    """``always`` enables every measured MVM, ``latency`` those with whole
    zero planes, ``energy`` those whose idle rows save more than their
    detections cost: on ciminus's 0.1 pJ detections none of resnet_tiny's
    (docs/sparsity.md), at 0.01 pJ some but not those without idle rows."""
    measured = read_profile(profile)

    def mvm_energy(objective: str | None) -> tuple[set[str], float]:
        dense = "convert-graph-to-tile,cim-static-allocate,convert-tile-to-meta"
        pipeline = _pipeline(profile, objective) if objective else dense
        trace = module_trace(compile_model(MODEL, "ciminus", pipeline))
        costs = op_costs(trace)
        mvms = [op for op in trace.ops if isinstance(op, MvmOp)]
        enabled = {op.weight for op in mvms if op.zero_shares}
        return enabled, sum(costs[op.id].total_energy_pj for op in mvms)

    measured_weights = set(measured.counts)
    always, always_pj = mvm_energy("always")
    assert always == measured_weights
    latency, _ = mvm_energy("latency")
    assert latency == {
        w for w in measured.counts if (s := measured.shares(w)) and s.planes > 0
    }
    assert mvm_energy("energy")[0] == set()
    with overridden(["energy.zero_detect_pj=0.01"]):
        always, always_pj = mvm_energy("always")
        energy, energy_pj = mvm_energy("energy")
        _, dense_pj = mvm_energy(None)
    idle = {w for w in measured.counts if (s := measured.shares(w)) and s.groups > 0}
    assert energy and energy < always and energy <= idle
    assert energy_pj < dense_pj and energy_pj < always_pj


def _tiled() -> ModuleOp:
    module = import_onnx(MODEL)
    ConvertGraphToTilePass("ciminus").apply(Context(), module)
    return module


@pytest.mark.parametrize(
    ("options", "text", "message"),
    [
        ({}, None, "give profile=FILE"),
        ({"objective": "fast"}, "{}", "objective must be one of energy, latency"),
        ({}, "not json", "not JSON"),
        ({}, '{"format": "x"}', "not a zero-plane profile"),
        (
            {},
            ZeroPlaneProfile("tiny", 0, {}).to_json(),
            "measured on target 'tiny'",
        ),
        (
            {},
            json.dumps(
                {
                    "format": "cimflow-zero-planes",
                    "version": 1,
                    "target": "ciminus",
                    "seed": 0,
                    "weights": {
                        "w": {"zero": 5, "planes": 4, "zero_groups": 0, "groups": 4}
                    },
                }
            ),
            "weight 'w' needs integers 0 <= zero <= planes and 0 <= zero_groups",
        ),
        (
            {"layers": ("/conv1/Conv",)},
            ZeroPlaneProfile("ciminus", 0, {}).to_json(),
            "has no planes of weight",
        ),
    ],
)
def test_bad_profiles_and_options_are_one_line_errors(
    tmp_path: Path, options: dict[str, object], text: str | None, message: str
) -> None:
    path = tmp_path / "p.json"
    if text is not None:
        path.write_text(text)
    profile = str(path) if text is not None else ""
    with pytest.raises(CimError, match=message) as error:
        CimInputSparsityPass(profile=profile, **options).apply(  # pyright: ignore[reportArgumentType]
            Context(), _tiled()
        )
    assert "\n" not in str(error.value)


def test_the_trace_refuses_impossible_shares(profile: Path) -> None:
    record = build_trace(compile_model(MODEL, "ciminus", _pipeline(profile)))
    ops = cast(list[dict[str, object]], record["ops"])
    mvm = next(op for op in ops if op.get("zero_planes"))
    mvm["zero_planes"] = 1.5
    with pytest.raises(CimError, match=r"'zero_planes' \(1.5\) must be in \[0, 1\)"):
        parse_trace(record)
    mvm["zero_planes"] = 0.5
    del mvm["zero_groups"]
    with pytest.raises(CimError, match="'zero_planes' and 'zero_groups' go together"):
        parse_trace(record)
    mvm["zero_groups"] = 0.5
    target = cast(dict[str, dict[str, object]], record["target"])
    target["array"]["zero_skip"] = False
    with pytest.raises(CimError, match="needs a target with zero detectors"):
        parse_trace(record)


def test_cim_verify_needs_quantized_mode_for_a_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    status = cim_verify.main(
        [str(MODEL), "--target", "ciminus", "--zero-planes", str(out)]
    )
    assert status != 0
    assert "--zero-planes needs --mode quantized" in capsys.readouterr().err
    assert not out.exists()
