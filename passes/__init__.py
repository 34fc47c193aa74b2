"""The compiler's passes, one per module, registered by kebab-case name."""

from collections.abc import Callable

from xdsl.passes import ModulePass

# pass name -> (module, class); loaded lazily so `xdsl-opt` starts fast.
PASS_MODULES: dict[str, tuple[str, str]] = {
    "convert-graph-to-tile": (
        "cimflow.passes.convert_graph_to_tile",
        "ConvertGraphToTilePass",
    ),
    "cim-rows-per-pass": ("cimflow.passes.cim_rows_per_pass", "CimRowsPerPassPass"),
    "cim-sparse-rows": ("cimflow.passes.cim_sparse_rows", "CimSparseRowsPass"),
    "cim-input-sparsity": (
        "cimflow.passes.cim_input_sparsity",
        "CimInputSparsityPass",
    ),
    "cim-static-allocate": ("cimflow.passes.static_allocate", "StaticAllocatePass"),
    "cim-pimcomp-allocate": (
        "cimflow.passes.pimcomp_allocate",
        "PimcompAllocatePass",
    ),
    "cim-clsa-allocate": ("cimflow.passes.clsa_allocate", "ClsaAllocatePass"),
    "cim-mlc-allocate": ("cimflow.passes.cimmlc_allocate", "CimMlcAllocatePass"),
    "cim-segment": ("cimflow.passes.cim_segment", "CimSegmentPass"),
    "cim-allocate": ("cimflow.passes.cim_allocate", "CimAllocatePass"),
    "cim-cmswitch": ("cimflow.passes.cmswitch", "CmswitchPass"),
    "convert-tile-to-meta": (
        "cimflow.passes.convert_tile_to_meta",
        "ConvertTileToMetaPass",
    ),
    "ndp-partition": ("cimflow.passes.ndp_partition", "NdpPartitionPass"),
    "cim-compile": ("cimflow.passes.pipelines", "CompilePass"),
    "cim-compile-static": ("cimflow.passes.pipelines", "CompileStaticPass"),
}


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass factories by name."""
    import importlib

    def factory(module: str, cls: str) -> Callable[[], type[ModulePass]]:
        return lambda: getattr(importlib.import_module(module), cls)

    return {name: factory(m, c) for name, (m, c) in PASS_MODULES.items()}
