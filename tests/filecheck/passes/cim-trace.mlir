// RUN: cim-opt %s --split-input-file -p 'cim-compile-static{target=tiny}' -t cim-trace | filecheck %s

// The cim-trace output target (docs/trace-format.md, version 5): one JSON
// document with sorted keys, one op (or tensor, constant, weight) per line,
// ids in order, deps sorted and earlier than the op. An MLP on `tiny` over
// two segments:
// l1.w (1 x 5 tiles, arrays 0-4) in segment 0; l2.w (Gemm transB with bias,
// k = 40: 2 row tiles x 3 column tiles = 6 arrays, 5 + 6 > 8) in segment 1,
// programmed onto arrays 0-5 again after the segment barrier. Both row
// tiles of each column tile sit in one core, so the cores' vector units add
// them and the bias (24 bytes, loaded once segment 0 has started: after
// its barrier, op 0; moved into both cores' local buffers once, 48 bytes
// there, where the accumulation reads it) before the 4 x 24 finished
// outputs leave (96 bytes):
// 96 + 96 = 192 lane operations. Each weight has
// one copy, so it streams from DRAM straight into its arrays as they are
// written (`feed` dram, `in_bytes`); every allocation has its `free`. No constants;
// the source has no import dims; both array-held weights are listed (l1.w a
// MatMul [K, N] operand, l2.w a Gemm transB [N, K] one). Version 5: moves go
// in to (and out from) the cores of the MVM's arrays (l1.w's arrays 0-4 sit
// in cores 0 and 1 of tiny's 4 arrays per core), MVMs read their input from
// those cores' local buffers, vector ops run on every core's units, and
// transfers name no cores (none reaches a local buffer).
builtin.module attributes {cim_graph.source = #cim_graph.source<"mlp.onnx">} {
  func.func @mlp(%x: tensor<4x32xf32>) -> tensor<4x24xf32> {
    %w1 = cim_graph.weight "l1.w" : tensor<32x40xf32>
    %y1 = cim_graph.linear %x, %w1 : (tensor<4x32xf32>, tensor<32x40xf32>) -> tensor<4x40xf32>
    %r1 = cim_graph.unary relu %y1 : tensor<4x40xf32> -> tensor<4x40xf32>
    %w2 = cim_graph.weight "l2.w" : tensor<24x40xf32>
    %b2 = cim_graph.weight "l2.b" : tensor<24xf32>
    %y2 = cim_graph.linear %r1, %w2, %b2 transpose_weight : (tensor<4x40xf32>, tensor<24x40xf32>, tensor<24xf32>) -> tensor<4x24xf32>
    func.return %y2 : tensor<4x24xf32>
  }
}

// CHECK:      {
// CHECK-NEXT:  "constants": [],
// CHECK-NEXT:  "format": "cim-trace",
// CHECK-NEXT:  "model": {
// CHECK-NEXT:   "batch": 4,
// CHECK-NEXT:   "dims": {},
// CHECK-NEXT:   "inputs": [{"dtype": "float32", "name": "input0", "shape": [4, 32]}],
// CHECK-NEXT:   "name": "mlp",
// CHECK-NEXT:   "outputs": [{"dtype": "float32", "name": "y2", "shape": [4, 24]}],
// CHECK-NEXT:   "source": "mlp.onnx"
// CHECK-NEXT:  },
// CHECK-NEXT:  "ops": [
// CHECK-NEXT:   {"deps": [], "id": 0, "kind": "barrier", "name": "", "segment": 0},
// CHECK-NEXT:   {"arrays": {{\[\[0, 5\]\]}}, "cols": 32, "deps": [0], "feed": "dram", "id": 1, "in_bytes": 1280, "k": [0, 32], "kind": "program", "n": [0, 40], "name": "l1.w", "rows": 32, "segment": 0, "weight": "l1.w"},
// CHECK-NEXT:   {"allocs": [{"bytes": 160, "level": "buffer", "tensor": "y1"}], "deps": [0], "id": 2, "kind": "barrier", "name": "allocate y1", "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 128, "level": "buffer", "tensor": "input0[0:4]@in"}], "arrays": [], "bytes": 128, "cores": [], "deps": [2], "dst": "buffer", "id": 3, "kind": "load", "name": "input0", "segment": 0, "src": "dram", "tensor": "input0"},
// CHECK-NEXT:   {"allocs": [{"bytes": 416, "cores": {{\[\[0, 2\]\]}}, "level": "local", "tensor": "input0[0:4]"}], "block": null, "bytes": 128, "cores": {{\[\[0, 2\]\]}}, "deps": [2, 3], "dir": "in", "id": 4, "kind": "move", "name": "l1.w", "segment": 0, "tensor": "input0"},
// CHECK-NEXT:   {"deps": [4], "frees": [{"level": "buffer", "tensor": "input0[0:4]@in"}], "id": 5, "kind": "free", "name": "input0[0:4]@in", "segment": 0},
// CHECK-NEXT:   {"arrays": {{\[\[0, 5\]\]}}, "cols": 32, "deps": [1, 4], "feed": "local", "id": 6, "in_bytes": 0, "input": "input0", "k": [0, 32], "kind": "mvm", "local_bytes": 128, "n": [0, 40], "name": "l1.w", "out_bytes": 0, "output": "y1", "rows": 32, "segment": 0, "v": [0, 4], "vectors": 4, "weight": "l1.w"},
// CHECK-NEXT:   {"block": [0, 0, 4], "bytes": 160, "cores": {{\[\[0, 2\]\]}}, "deps": [6], "dir": "out", "id": 7, "kind": "move", "name": "l1.w", "segment": 0, "tensor": "y1"},
// CHECK-NEXT:   {"deps": [6, 7], "frees": [{"cores": {{\[\[0, 2\]\]}}, "level": "local", "tensor": "input0[0:4]"}], "id": 8, "kind": "free", "name": "input0[0:4]", "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 160, "level": "buffer", "tensor": "r1"}], "deps": [7], "id": 9, "kind": "barrier", "name": "allocate r1", "segment": 0},
// CHECK-NEXT:   {"attrs": {"kind": "relu"}, "block": null, "cores": {{\[\[0, 1\]\]}}, "deps": [7, 9], "element_ops": 160, "id": 10, "in_bytes": 160, "inputs": ["y1"], "kind": "vector", "name": "relu", "op": "relu", "out_bytes": 160, "outputs": ["r1"], "segment": 0},
// CHECK-NEXT:   {"deps": [7, 10], "frees": [{"level": "buffer", "tensor": "y1"}], "id": 11, "kind": "free", "name": "y1", "segment": 0},
// CHECK-NEXT:   {"deps": [5, 8, 11], "id": 12, "kind": "barrier", "name": "", "segment": 1},
// CHECK-NEXT:   {"arrays": {{\[\[0, 6\]\]}}, "cols": 32, "deps": [1, 6], "feed": "dram", "id": 13, "in_bytes": 960, "k": [0, 40], "kind": "program", "n": [0, 24], "name": "l2.w", "rows": 32, "segment": 1, "weight": "l2.w"},
// CHECK-NEXT:   {"allocs": [{"bytes": 96, "level": "buffer", "tensor": "y2"}], "deps": [10], "id": 14, "kind": "barrier", "name": "allocate y2", "segment": 1},
// CHECK-NEXT:   {"allocs": [{"bytes": 24, "level": "buffer", "tensor": "l2.b"}], "arrays": [], "bytes": 24, "cores": [], "deps": [0], "dst": "buffer", "id": 15, "kind": "load", "name": "l2.b", "segment": 1, "src": "dram", "tensor": "l2.b"},
// CHECK-NEXT:   {"allocs": [{"bytes": 416, "cores": {{\[\[0, 2\]\]}}, "level": "local", "tensor": "r1[0:4]"}], "block": null, "bytes": 160, "cores": {{\[\[0, 2\]\]}}, "deps": [10, 14], "dir": "in", "id": 16, "kind": "move", "name": "l2.w", "segment": 1, "tensor": "r1"},
// CHECK-NEXT:   {"arrays": {{\[\[0, 6\]\]}}, "cols": 32, "deps": [13, 16], "feed": "local", "id": 17, "in_bytes": 0, "input": "r1", "k": [0, 40], "kind": "mvm", "local_bytes": 160, "n": [0, 24], "name": "l2.w", "out_bytes": 0, "output": "y2", "rows": 32, "segment": 1, "v": [0, 4], "vectors": 4, "weight": "l2.w"},
// CHECK-NEXT:   {"allocs": [{"bytes": 48, "cores": {{\[\[0, 2\]\]}}, "level": "local", "tensor": "l2.b@0:2"}], "block": null, "bytes": 24, "cores": {{\[\[0, 2\]\]}}, "deps": [15], "dir": "in", "id": 18, "kind": "move", "name": "l2.b@0:2", "segment": 1, "tensor": "l2.b"},
// CHECK-NEXT:   {"attrs": {}, "block": [0, 0, 4], "cores": {{\[\[0, 2\]\]}}, "deps": [17, 18], "element_ops": 192, "id": 19, "in_bytes": 0, "inputs": ["y2", "l2.b"], "kind": "vector", "name": "y2", "op": "accumulate", "out_bytes": 0, "outputs": ["y2"], "segment": 1},
// CHECK-NEXT:   {"block": [0, 0, 4], "bytes": 96, "cores": {{\[\[0, 2\]\]}}, "deps": [19], "dir": "out", "id": 20, "kind": "move", "name": "l2.w", "segment": 1, "tensor": "y2"},
// CHECK-NEXT:   {"deps": [17, 20], "frees": [{"cores": {{\[\[0, 2\]\]}}, "level": "local", "tensor": "r1[0:4]"}], "id": 21, "kind": "free", "name": "r1[0:4]", "segment": 1},
// CHECK-NEXT:   {"deps": [19], "frees": [{"cores": {{\[\[0, 2\]\]}}, "level": "local", "tensor": "l2.b@0:2"}], "id": 22, "kind": "free", "name": "l2.b@0:2", "segment": 1},
// CHECK-NEXT:   {"deps": [10, 16], "frees": [{"level": "buffer", "tensor": "r1"}], "id": 23, "kind": "free", "name": "r1", "segment": 1},
// CHECK-NEXT:   {"arrays": [], "bytes": 96, "cores": [], "deps": [20], "dst": "dram", "id": 24, "kind": "store", "name": "output0", "segment": 1, "src": "buffer", "tensor": "y2"},
// CHECK-NEXT:   {"deps": [20, 24], "frees": [{"level": "buffer", "tensor": "y2"}], "id": 25, "kind": "free", "name": "y2", "segment": 1},
// CHECK-NEXT:   {"deps": [15, 18, 19], "frees": [{"level": "buffer", "tensor": "l2.b"}], "id": 26, "kind": "free", "name": "l2.b", "segment": 1}
// CHECK-NEXT:  ],
// CHECK-NEXT:  "solver": [],
// CHECK-NEXT:  "strategy": "static",
// CHECK-NEXT:  "target": {
// CHECK-NEXT:   "array": {"active_rows": 32, "adc_bits": 8, "adcs_per_array": 32, "cell_bits": 2, "cols": 32, "compute_granularity": "crossbar", "dac_bits": 1, "dynamic_matmul": false, "mux_delay_cycles": 0, "mux_inputs": 0, "mvm_issue_interval_cycles": 8, "mvm_latency_cycles": 10, "program_cycles_per_row": 1, "rows": 32, "subarray_cols": 0, "subarray_rows": 0, "zero_detect_rows": 0, "zero_skip": false},
// CHECK-NEXT:   "buffers": {"global_bandwidth_bytes_per_cycle": 16.0, "global_bytes": 4096, "local_bandwidth_bytes_per_cycle": 16.0, "local_bytes": 1024},
// CHECK-NEXT:   "dram": {"bandwidth_bytes_per_cycle": 8.0, "latency_cycles": 20},
// CHECK-NEXT:   "dual_mode": {"feed_bytes_per_cycle": 0.0, "feeds_compute": false, "memory_bandwidth_bytes_per_cycle": 4.0, "memory_capacity_bytes": 256, "switch_latency_cycles": 1, "switchable_arrays": 8},
// CHECK-NEXT:   "energy": {"adc_pj_per_conversion_step": {{.*}}, "vector_pj_per_element": {{.*}}},
// CHECK-NEXT:   "hierarchy": {"arrays_per_core": 4, "chips": 1, "cores_per_chip": 2},
// CHECK-NEXT:   "interconnect": {"bandwidth_bytes_per_cycle": 16.0, "latency_cycles": 2, "multicast": false, "topology": "bus"},
// CHECK-NEXT:   "nonideal": {"adc_inl_lsb": 0.0, "adc_offset_lsb": 0.0, "program_sigma": 0.0, "read_sigma": 0.0, "seed": 0, "stuck_at_one": 0.0, "stuck_at_zero": 0.0},
// CHECK-NEXT:   "precision": {"accumulator_bits": 32, "activation_bits": 8, "weight_bits": 8},
// CHECK-NEXT:   "target": {"clock_ghz": 1.0, "description": "{{.*}}", "name": "tiny"},
// CHECK-NEXT:   "vector": {"lanes": 8, "latency_cycles": 2, "units_per_core": 1}
// CHECK-NEXT:  },
// CHECK-NEXT:  "tensors": [
// CHECK-NEXT:   {"bytes": 128, "dtype": "float32", "name": "input0", "shape": [4, 32]},
// CHECK-NEXT:   {"bytes": 160, "dtype": "float32", "name": "y1", "shape": [4, 40]},
// CHECK-NEXT:   {"bytes": 160, "dtype": "float32", "name": "r1", "shape": [4, 40]},
// CHECK-NEXT:   {"bytes": 96, "dtype": "float32", "name": "y2", "shape": [4, 24]}
// CHECK-NEXT:  ],
// CHECK-NEXT:  "version": 5,
// CHECK-NEXT:  "weights": [
// CHECK-NEXT:   {"groups": 1, "k": 32, "layout": "kn", "n": 40, "name": "l1.w"},
// CHECK-NEXT:   {"groups": 1, "k": 40, "layout": "nk", "n": 24, "name": "l2.w"}
// CHECK-NEXT:  ]
// CHECK-NEXT: }

// -----

// Version 2's additions: the import dims of the source (sorted), constants
// with their dtype and flat values (a float vector the mul reads, the int64
// indices of an embedding lookup), a vector op with several outputs (split),
// and operator parameters as JSON: integers, integer lists (perm, axes),
// floats (the clip's bounds, carried by the mul that applies it as its
// results leave: `then`), enum kinds as strings, a unit attribute as true
// (keepdims).
// qk.w (Gemm transB [16, 8]) is nk with k = 8, n = 16; the embedding table
// pos is read by vector work, so it is loaded but not listed in `weights`.
builtin.module attributes {cim_graph.source = #cim_graph.source<"attn.onnx", sequence = 4, batch = 1>} {
  func.func @attn(%x: tensor<1x4x8xf32>) -> (tensor<1x4x1xf32>, tensor<1x8x4xf32>, tensor<1x2x8xf32>) {
    %w = cim_graph.weight "qk.w" : tensor<16x8xf32>
    %qk = cim_graph.linear %x, %w transpose_weight : (tensor<1x4x8xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>
    %q, %k = cim_graph.split %qk axis 2 : tensor<1x4x16xf32> -> (tensor<1x4x8xf32>, tensor<1x4x8xf32>)
    %kt = cim_graph.transpose %k perm [0, 2, 1] : tensor<1x4x8xf32> -> tensor<1x8x4xf32>
    %scale = cim_graph.constant dense<[0.5, 0.25, 2.0, 1.0, 0.5, 0.25, 2.0, -1.0]> : tensor<8xf32>
    %qs = cim_graph.binary mul %q, %scale : (tensor<1x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    %c = cim_graph.clip %qs min 0.0 max 6.0 : tensor<1x4x8xf32> -> tensor<1x4x8xf32>
    %r = cim_graph.reduce sum %c axes [2] keepdims : tensor<1x4x8xf32> -> tensor<1x4x1xf32>
    %pos = cim_graph.weight "pos" : tensor<4x8xf32>
    %ids = cim_graph.constant dense<[[2, 0]]> : tensor<1x2xi64>
    %p = cim_graph.gather %pos, %ids axis 0 : (tensor<4x8xf32>, tensor<1x2xi64>) -> tensor<1x2x8xf32>
    func.return %r, %kt, %p : tensor<1x4x1xf32>, tensor<1x8x4xf32>, tensor<1x2x8xf32>
  }
}

// CHECK:      {
// CHECK-NEXT:  "constants": [
// CHECK-NEXT:   {"dtype": "float32", "name": "scale", "shape": [8], "values": [0.5, 0.25, 2.0, 1.0, 0.5, 0.25, 2.0, -1.0]},
// CHECK-NEXT:   {"dtype": "int64", "name": "ids", "shape": [1, 2], "values": [2, 0]}
// CHECK-NEXT:  ],
// CHECK-NEXT:  "format": "cim-trace",
// CHECK-NEXT:  "model": {
// CHECK-NEXT:   "batch": 1,
// CHECK-NEXT:   "dims": {"batch": 1, "sequence": 4},
// CHECK-NEXT:   "inputs": [{"dtype": "float32", "name": "input0", "shape": [1, 4, 8]}],
// CHECK-NEXT:   "name": "attn",
// CHECK-NEXT:   "outputs": [{"dtype": "float32", "name": "r", "shape": [1, 4, 1]}, {"dtype": "float32", "name": "kt", "shape": [1, 8, 4]}, {"dtype": "float32", "name": "p", "shape": [1, 2, 8]}],
// CHECK-NEXT:   "source": "attn.onnx"
// CHECK-NEXT:  },
// CHECK-NEXT:  "ops": [
// CHECK-NEXT:   {"deps": [], "id": 0, "kind": "barrier", "name": "", "segment": 0},
// CHECK-NEXT:   {"attrs": {}, "block": null, "cores": {{\[\[0, 1\]\]}}, "deps": [0], "element_ops": 0, "id": 1, "in_bytes": 0, "in_from": "dram", "inputs": ["input0"], "kind": "vector", "name": "reshape", "op": "reshape", "out_bytes": 0, "out_to": "dram", "outputs": ["qk"], "segment": 0},
// CHECK-NEXT:   {"arrays": {{\[\[0, 2\]\]}}, "cols": 32, "deps": [0], "feed": "dram", "id": 2, "in_bytes": 128, "k": [0, 8], "kind": "program", "n": [0, 16], "name": "qk.w", "rows": 8, "segment": 0, "weight": "qk.w"},
// CHECK-NEXT:   {"allocs": [{"bytes": 64, "level": "buffer", "tensor": "qk.1"}], "deps": [1], "id": 3, "kind": "barrier", "name": "allocate qk.1", "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 32, "level": "buffer", "tensor": "qk[0:4]@in"}], "arrays": [], "bytes": 32, "cores": [], "deps": [1, 3], "dst": "buffer", "id": 4, "kind": "load", "name": "qk", "segment": 0, "src": "dram", "tensor": "qk"},
// CHECK-NEXT:   {"allocs": [{"bytes": 96, "cores": {{\[\[0, 1\]\]}}, "level": "local", "tensor": "qk[0:4]"}], "block": null, "bytes": 32, "cores": {{\[\[0, 1\]\]}}, "deps": [1, 3, 4], "dir": "in", "id": 5, "kind": "move", "name": "qk.w", "segment": 0, "tensor": "qk"},
// CHECK-NEXT:   {"deps": [5], "frees": [{"level": "buffer", "tensor": "qk[0:4]@in"}], "id": 6, "kind": "free", "name": "qk[0:4]@in", "segment": 0},
// CHECK-NEXT:   {"arrays": {{\[\[0, 2\]\]}}, "cols": 32, "deps": [2, 5], "feed": "local", "id": 7, "in_bytes": 0, "input": "qk", "k": [0, 8], "kind": "mvm", "local_bytes": 32, "n": [0, 16], "name": "qk.w", "out_bytes": 0, "output": "qk.1", "rows": 8, "segment": 0, "v": [0, 4], "vectors": 4, "weight": "qk.w"},
// CHECK-NEXT:   {"block": [0, 0, 4], "bytes": 64, "cores": {{\[\[0, 1\]\]}}, "deps": [7], "dir": "out", "id": 8, "kind": "move", "name": "qk.w", "segment": 0, "tensor": "qk.1"},
// CHECK-NEXT:   {"deps": [7, 8], "frees": [{"cores": {{\[\[0, 1\]\]}}, "level": "local", "tensor": "qk[0:4]"}], "id": 9, "kind": "free", "name": "qk[0:4]", "segment": 0},
// CHECK-NEXT:   {"attrs": {}, "block": null, "cores": {{\[\[1, 2\]\]}}, "deps": [8], "element_ops": 0, "id": 10, "in_bytes": 0, "inputs": ["qk.1"], "kind": "vector", "name": "reshape", "op": "reshape", "out_bytes": 0, "outputs": ["qk.2"], "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 32, "level": "buffer", "tensor": "q"}, {"bytes": 32, "level": "buffer", "tensor": "k"}], "deps": [10], "id": 11, "kind": "barrier", "name": "allocate q", "segment": 0},
// CHECK-NEXT:   {"attrs": {"axis": 2}, "block": null, "cores": {{\[\[0, 1\]\]}}, "deps": [10, 11], "element_ops": 64, "id": 12, "in_bytes": 64, "inputs": ["qk.2"], "kind": "vector", "name": "split", "op": "split", "out_bytes": 64, "outputs": ["q", "k"], "segment": 0},
// CHECK-NEXT:   {"deps": [8, 10, 12], "frees": [{"level": "buffer", "tensor": "qk.1"}], "id": 13, "kind": "free", "name": "qk.1", "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 32, "level": "buffer", "tensor": "kt"}], "deps": [12], "id": 14, "kind": "barrier", "name": "allocate kt", "segment": 0},
// CHECK-NEXT:   {"attrs": {"perm": [0, 2, 1]}, "block": null, "cores": {{\[\[1, 2\]\]}}, "deps": [12, 14], "element_ops": 32, "id": 15, "in_bytes": 32, "inputs": ["k"], "kind": "vector", "name": "transpose", "op": "transpose", "out_bytes": 32, "outputs": ["kt"], "segment": 0},
// CHECK-NEXT:   {"deps": [12, 15], "frees": [{"level": "buffer", "tensor": "k"}], "id": 16, "kind": "free", "name": "k", "segment": 0},
// CHECK-NEXT:   {"arrays": [], "bytes": 32, "cores": [], "deps": [15], "dst": "dram", "id": 17, "kind": "store", "name": "output1", "segment": 0, "src": "buffer", "tensor": "kt"},
// CHECK-NEXT:   {"deps": [15, 17], "frees": [{"level": "buffer", "tensor": "kt"}], "id": 18, "kind": "free", "name": "kt", "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 32, "level": "buffer", "tensor": "qs"}], "deps": [12], "id": 19, "kind": "barrier", "name": "allocate qs", "segment": 0},
// CHECK-NEXT:   {"attrs": {"kind": "mul", "then": "clip", "then_max": 6.0, "then_min": 0.0}, "block": null, "cores": {{\[\[0, 1\]\]}}, "deps": [12, 19], "element_ops": 64, "id": 20, "in_bytes": 32, "inputs": ["q", "scale"], "kind": "vector", "name": "mul", "op": "mul", "out_bytes": 32, "outputs": ["qs"], "segment": 0},
// CHECK-NEXT:   {"deps": [12, 20], "frees": [{"level": "buffer", "tensor": "q"}], "id": 21, "kind": "free", "name": "q", "segment": 0},
// CHECK-NEXT:   {"attrs": {}, "block": null, "cores": {{\[\[1, 2\]\]}}, "deps": [20], "element_ops": 0, "id": 22, "in_bytes": 0, "inputs": ["qs"], "kind": "vector", "name": "reshape", "op": "reshape", "out_bytes": 0, "outputs": ["c"], "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 4, "level": "buffer", "tensor": "r"}], "deps": [22], "id": 23, "kind": "barrier", "name": "allocate r", "segment": 0},
// CHECK-NEXT:   {"attrs": {"axes": [2], "keepdims": true, "kind": "sum"}, "block": null, "cores": {{\[\[0, 2\]\]}}, "deps": [22, 23], "element_ops": 32, "id": 24, "in_bytes": 32, "inputs": ["c"], "kind": "vector", "name": "reduce", "op": "reduce", "out_bytes": 4, "outputs": ["r"], "segment": 0},
// CHECK-NEXT:   {"deps": [20, 22, 24], "frees": [{"level": "buffer", "tensor": "qs"}], "id": 25, "kind": "free", "name": "qs", "segment": 0},
// CHECK-NEXT:   {"arrays": [], "bytes": 4, "cores": [], "deps": [24], "dst": "dram", "id": 26, "kind": "store", "name": "output0", "segment": 0, "src": "buffer", "tensor": "r"},
// CHECK-NEXT:   {"deps": [24, 26], "frees": [{"level": "buffer", "tensor": "r"}], "id": 27, "kind": "free", "name": "r", "segment": 0},
// CHECK-NEXT:   {"allocs": [{"bytes": 16, "level": "buffer", "tensor": "p"}], "deps": [0], "id": 28, "kind": "barrier", "name": "allocate p", "segment": 0},
// CHECK-NEXT:   {"attrs": {"axis": 0}, "block": null, "cores": {{\[\[0, 1\]\]}}, "deps": [28], "element_ops": 16, "id": 29, "in_bytes": 16, "in_from": "dram", "inputs": ["pos", "ids"], "kind": "vector", "name": "gather", "op": "gather", "out_bytes": 16, "outputs": ["p"], "segment": 0},
// CHECK-NEXT:   {"arrays": [], "bytes": 16, "cores": [], "deps": [29], "dst": "dram", "id": 30, "kind": "store", "name": "output2", "segment": 0, "src": "buffer", "tensor": "p"},
// CHECK-NEXT:   {"deps": [29, 30], "frees": [{"level": "buffer", "tensor": "p"}], "id": 31, "kind": "free", "name": "p", "segment": 0}
// CHECK-NEXT:  ],
// CHECK-NEXT:  "solver": [],
// CHECK-NEXT:  "strategy": "static",
// CHECK-NEXT:  "target": {
// CHECK:       "tensors": [
// CHECK-NEXT:   {"bytes": 32, "dtype": "float32", "name": "input0", "shape": [1, 4, 8]},
// CHECK-NEXT:   {"bytes": 32, "dtype": "float32", "name": "qk", "shape": [4, 8]},
// CHECK-NEXT:   {"bytes": 64, "dtype": "float32", "name": "qk.1", "shape": [4, 16]},
// CHECK-NEXT:   {"bytes": 64, "dtype": "float32", "name": "qk.2", "shape": [1, 4, 16]},
// CHECK-NEXT:   {"bytes": 32, "dtype": "float32", "name": "q", "shape": [1, 4, 8]},
// CHECK-NEXT:   {"bytes": 32, "dtype": "float32", "name": "k", "shape": [1, 4, 8]},
// CHECK-NEXT:   {"bytes": 32, "dtype": "float32", "name": "kt", "shape": [1, 8, 4]},
// CHECK-NEXT:   {"bytes": 32, "dtype": "float32", "name": "qs", "shape": [1, 4, 8]},
// CHECK-NEXT:   {"bytes": 32, "dtype": "float32", "name": "c", "shape": [1, 4, 8]},
// CHECK-NEXT:   {"bytes": 4, "dtype": "float32", "name": "r", "shape": [1, 4, 1]},
// CHECK-NEXT:   {"bytes": 16, "dtype": "float32", "name": "p", "shape": [1, 2, 8]}
// CHECK-NEXT:  ],
// CHECK-NEXT:  "version": 5,
// CHECK-NEXT:  "weights": [
// CHECK-NEXT:   {"groups": 1, "k": 8, "layout": "nk", "n": 16, "name": "qk.w"}
// CHECK-NEXT:  ]
// CHECK-NEXT: }
