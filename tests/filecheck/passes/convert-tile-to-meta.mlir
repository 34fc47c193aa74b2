// RUN: cim-opt %s --split-input-file -p 'convert-tile-to-meta{target=tiny}' | filecheck %s
// RUN: cim-opt %S/Inputs/dynamic_matmul.mlir -p 'convert-tile-to-meta{target="%S/Inputs/tiny_dynamic.toml"}' | filecheck %s --check-prefix=DYNAMIC
// RUN: cim-opt %S/Inputs/two_copies.mlir -p 'convert-tile-to-meta{target="%S/Inputs/tiny_multicast.toml"}' | filecheck %s --check-prefix=MULTICAST

// convert-tile-to-meta on hand-written, already allocated cim_tile IR for the
// `tiny` target (8 arrays of 32 x 32, 4 bit slices, 1-byte activations and
// weights, 4-byte accumulators, 2 vector units, a 4096-byte global buffer).

// Two segments. Each segment starts with a barrier on everything before it,
// then programs the weights resident in it, giving out arrays from array 0
// again: a program waits not for the barrier but for the ops that last used
// its arrays (l2.w's for l1.w's program and MVM, so it may go in while the
// relu still runs); a weight with one copy streams from DRAM straight into its arrays
// as they are written (`feed dram`, `in_bytes`). The model input is loaded from
// DRAM, moved to the arrays' cores and multiplied; l2.w has 2 row tiles, both
// in the same core for each column tile, so the core's vector units add them
// (24 adds) before the 24 finished outputs move out (24 bytes). Every
// allocation (global buffer, local buffers) has its `free`. Each weight is
// declared (layout and its tiling's groups, k, n) among the tensors when its
// MVM is lowered. The relu carries its operator's parameters (the kind); the
// accumulate has none.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @segments(%x: tensor<1x32xf32>) -> tensor<1x24xf32> {
    %a = cim_tile.mvm %x weight "l1.w" layout kn tiling <k = 32, n = 40, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 5, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x40xf32>
    %r = cim_tile.vector segment 0 (%a) : (tensor<1x40xf32>) -> tensor<1x40xf32> {
    ^bb0(%0: tensor<1x40xf32>):
      %1 = cim_graph.unary relu %0 : tensor<1x40xf32> -> tensor<1x40xf32>
      cim_tile.yield %1 : tensor<1x40xf32>
    }
    %b = cim_tile.mvm %r weight "l2.w" layout kn tiling <k = 40, n = 24, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 3, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 1> mode <compute> : tensor<1x40xf32> -> tensor<1x24xf32>
    func.return %b : tensor<1x24xf32>
  }
}

// CHECK:      cim_meta.schedule @segments target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["b"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x32xf32> bytes 32
// CHECK-NEXT:   cim_meta.weight "l1.w" layout kn groups 1 k 32 n 40
// CHECK-NEXT:   cim_meta.tensor "a" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.weight "l2.w" layout kn groups 1 k 40 n 24
// CHECK-NEXT:   cim_meta.tensor "b" : tensor<1x24xf32> bytes 24
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.program "l1.w" arrays <0:5> rows 32 cols 32 k [0, 32] n [0, 40] feed dram in_bytes 1280 segment 0 label "l1.w" after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.segment 0 label "allocate a" allocs [#cim_meta.alloc<"a" 40 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.load "input0" 32 bytes dram -> buffer segment 0 label "input0" allocs [#cim_meta.alloc<"input0[0:1]@in" 32 bytes buffer>] after(%[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.move "input0" 32 bytes in cores <0:2> segment 0 label "l1.w" allocs [#cim_meta.alloc<"input0[0:1]" 104 bytes local cores <0:2>>] after(%[[V2]], %[[V3]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:1]@in" buffer>] segment 0 label "input0[0:1]@in" after(%[[V4]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.mvm "l1.w" arrays <0:5> vectors 1 rows 32 cols 32 k [0, 32] n [0, 40] v [0, 1] input "input0" output "a" local_bytes 32 segment 0 label "l1.w" after(%[[V4]], %[[V1]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.move "a" 40 bytes out cores <0:2> block [0, 0, 1] segment 0 label "l1.w" after(%[[V6]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:1]" local cores <0:2>>] segment 0 label "input0[0:1]" after(%[[V7]], %[[V6]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.segment 0 label "allocate r" allocs [#cim_meta.alloc<"r" 40 bytes buffer>] after(%[[V7]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.vector "relu" element_ops 40 inputs ["a"] outputs ["r"] attrs {kind = #cim_graph<unary_kind relu>} cores <0:1> in_bytes 40 out_bytes 40 segment 0 label "relu" after(%[[V9]], %[[V7]])
// CHECK-NEXT:   %[[V11:[0-9]+]] = cim_meta.free [#cim_meta.place<"a" buffer>] segment 0 label "a" after(%[[V7]], %[[V10]])
// CHECK-NEXT:   %[[V12:[0-9]+]] = cim_meta.segment 1 after(%[[V5]], %[[V8]], %[[V11]])
// CHECK-NEXT:   %[[V13:[0-9]+]] = cim_meta.program "l2.w" arrays <0:6> rows 32 cols 32 k [0, 40] n [0, 24] feed dram in_bytes 960 segment 1 label "l2.w" after(%[[V1]], %[[V6]])
// CHECK-NEXT:   %[[V14:[0-9]+]] = cim_meta.segment 1 label "allocate b" allocs [#cim_meta.alloc<"b" 24 bytes buffer>] after(%[[V10]])
// CHECK-NEXT:   %[[V15:[0-9]+]] = cim_meta.move "r" 40 bytes in cores <0:2> segment 1 label "l2.w" allocs [#cim_meta.alloc<"r[0:1]" 104 bytes local cores <0:2>>] after(%[[V10]], %[[V14]])
// CHECK-NEXT:   %[[V16:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:6> vectors 1 rows 32 cols 32 k [0, 40] n [0, 24] v [0, 1] input "r" output "b" local_bytes 40 segment 1 label "l2.w" after(%[[V15]], %[[V13]])
// CHECK-NEXT:   %[[V17:[0-9]+]] = cim_meta.vector "accumulate" element_ops 24 inputs ["b"] outputs ["b"] attrs {} block [0, 0, 1] cores <0:2> segment 1 label "b" after(%[[V16]])
// CHECK-NEXT:   %[[V18:[0-9]+]] = cim_meta.move "b" 24 bytes out cores <0:2> block [0, 0, 1] segment 1 label "l2.w" after(%[[V17]])
// CHECK-NEXT:   %[[V19:[0-9]+]] = cim_meta.free [#cim_meta.place<"r[0:1]" local cores <0:2>>] segment 1 label "r[0:1]" after(%[[V18]], %[[V16]])
// CHECK-NEXT:   %[[V20:[0-9]+]] = cim_meta.free [#cim_meta.place<"r" buffer>] segment 1 label "r" after(%[[V10]], %[[V15]])
// CHECK-NEXT:   %[[V21:[0-9]+]] = cim_meta.store "b" 24 bytes buffer -> dram segment 1 label "output0" after(%[[V18]])
// CHECK-NEXT:   %[[V22:[0-9]+]] = cim_meta.free [#cim_meta.place<"b" buffer>] segment 1 label "b" after(%[[V18]], %[[V21]])
// CHECK-NEXT: }

// -----

// Two copies of a weight (set by hand): the weight is loaded into the global
// buffer once, each copy gets its own arrays and program from there, and
// the 4 input vectors are split between them in one parallel
// group. The batch is the first input's leading dimension. The weight is
// declared once however many copies hold it.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @copies(%x: tensor<4x32xf32>) -> tensor<4x8xf32> {
    %y = cim_tile.mvm %x weight "w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x8xf32>
    func.return %y : tensor<4x8xf32>
  }
}

// CHECK:      cim_meta.schedule @copies target "tiny" strategy "static" batch 4 inputs ["input0"] outputs ["y"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<4x32xf32> bytes 128
// CHECK-NEXT:   cim_meta.weight "w" layout kn groups 1 k 32 n 8
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<4x8xf32> bytes 32
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.load "w" 256 bytes dram -> buffer segment 0 label "w" allocs [#cim_meta.alloc<"w" 256 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.program "w" arrays <0:1> rows 32 cols 32 k [0, 32] n [0, 8] in_bytes 256 segment 0 label "w" after(%[[V1]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.program "w" arrays <1:2> rows 32 cols 32 k [0, 32] n [0, 8] in_bytes 256 segment 0 label "w" after(%[[V1]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.free [#cim_meta.place<"w" buffer>] segment 0 label "w" after(%[[V1]], %[[V2]], %[[V3]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.segment 0 label "allocate y" allocs [#cim_meta.alloc<"y" 32 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.load "input0" 128 bytes dram -> buffer segment 0 label "input0" allocs [#cim_meta.alloc<"input0[0:4]@in" 128 bytes buffer>] after(%[[V5]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.move "input0" 128 bytes in cores <0:1> segment 0 label "w" allocs [#cim_meta.alloc<"input0[0:4]" 160 bytes local cores <0:1>>] after(%[[V5]], %[[V6]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:4]@in" buffer>] segment 0 label "input0[0:4]@in" after(%[[V7]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.mvm "w" arrays <0:1> vectors 2 rows 32 cols 32 k [0, 32] n [0, 8] v [0, 2] input "input0" output "y" local_bytes 64 segment 0 label "w" after(%[[V7]], %[[V2]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.mvm "w" arrays <1:2> vectors 2 rows 32 cols 32 k [0, 32] n [0, 8] v [2, 4] input "input0" output "y" local_bytes 64 segment 0 label "w" after(%[[V7]], %[[V3]])
// CHECK-NEXT:   %[[V11:[0-9]+]] = cim_meta.segment 0 label "join y" after(%[[V9]], %[[V10]])
// CHECK-NEXT:   %[[V12:[0-9]+]] = cim_meta.move "y" 32 bytes out cores <0:1> block [0, 0, 4] segment 0 label "w" after(%[[V11]])
// CHECK-NEXT:   %[[V13:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:4]" local cores <0:1>>] segment 0 label "input0[0:4]" after(%[[V12]], %[[V9]], %[[V10]])
// CHECK-NEXT:   %[[V14:[0-9]+]] = cim_meta.store "y" 32 bytes buffer -> dram segment 0 label "output0" after(%[[V12]])
// CHECK-NEXT:   %[[V15:[0-9]+]] = cim_meta.free [#cim_meta.place<"y" buffer>] segment 0 label "y" after(%[[V12]], %[[V14]])
// CHECK-NEXT: }

// The same two copies where the interconnect multicasts: one program writes
// both, its 256 bytes read from the buffer once; each copy's MVM waits for it.
// MULTICAST:      %[[P:[0-9]+]] = cim_meta.program "w" arrays <0:2> rows 32 cols 32 k [0, 32] n [0, 8] in_bytes 256 copies 2 segment 0 label "w" after(%{{[0-9]+}})
// MULTICAST-NEXT: cim_meta.free [#cim_meta.place<"w" buffer>] segment 0 label "w" after(%{{[0-9]+}}, %[[P]])
// MULTICAST:      cim_meta.mvm "w" arrays <0:1> {{.*}} after(%{{[0-9]+}}, %[[P]])
// MULTICAST-NEXT: cim_meta.mvm "w" arrays <1:2> {{.*}} after(%{{[0-9]+}}, %[[P]])

// -----

// A weight streamed in chunks: 256 x 256 on 8 arrays (8 row tiles x 32 column
// tiles). Each chunk is all 8 row tiles of one column tile (8 outputs),
// programmed into arrays 0..7 straight from DRAM in one burst of 256 x 8 =
// 2048 bytes (in DRAM order: after the previous chunk's burst), then
// multiplied. The next chunk's program waits for the previous chunk's
// additions (it reuses the arrays). Each chunk's 8 row tiles sit in two
// cores of 4 arrays; each core adds its own 4 row tiles, so 2 x 8 four-byte
// partial sums leave (64 bytes, in a passing allocation of the global
// buffer) and are added right after it (56 adds, `block [1, n0, n1]`: its
// columns): 32 x 56 = 1792 adds. The streamed weight is declared once,
// whole (k = 256, n = 256), not per chunk.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @chunked(%h: tensor<1x256xf32>) -> tensor<1x256xf32> {
    %y = cim_tile.mvm %h weight "big.w" layout kn tiling <k = 256, n = 256, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 8, col_tiles = 32, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 32> mode <compute> : tensor<1x256xf32> -> tensor<1x256xf32>
    func.return %y : tensor<1x256xf32>
  }
}

// CHECK:      cim_meta.schedule @chunked target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["y"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x256xf32> bytes 256
// CHECK-NEXT:   cim_meta.weight "big.w" layout kn groups 1 k 256 n 256
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<1x256xf32> bytes 256
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.segment 0 label "allocate y" allocs [#cim_meta.alloc<"y" 256 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.program "big.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [0, 8] feed dram in_bytes 2048 segment 0 label "big.w" after(%[[V0]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.mvm "big.w" arrays <0:8> vectors 1 rows 32 cols 32 k [0, 256] n [0, 8] v [0, 1] input "input0" output "y" feed dram in_bytes 256 out_bytes 64 local_bytes 128 segment 0 label "big.w" allocs [#cim_meta.alloc<"y@chunk0" 64 bytes buffer>] after(%[[V1]], %[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.vector "accumulate" element_ops 56 inputs ["y"] outputs ["y"] attrs {} block [1, 0, 8] cores <0:2> in_bytes 64 out_bytes 8 segment 0 label "y" after(%[[V3]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.free [#cim_meta.place<"y@chunk0" buffer>] segment 0 label "y@chunk0" after(%[[V4]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.program "big.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [8, 16] feed dram in_bytes 2048 segment 0 label "big.w" after(%[[V4]], %[[V2]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.mvm "big.w" arrays <0:8> vectors 1 rows 32 cols 32 k [0, 256] n [8, 16] v [0, 1] input "input0" output "y" feed dram in_bytes 256 out_bytes 64 local_bytes 128 segment 0 label "big.w" allocs [#cim_meta.alloc<"y@chunk1" 64 bytes buffer>] after(%[[V1]], %[[V6]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.vector "accumulate" element_ops 56 inputs ["y"] outputs ["y"] attrs {} block [1, 8, 16] cores <0:2> in_bytes 64 out_bytes 8 segment 0 label "y" after(%[[V7]])
// CHECK:        %[[V126:[0-9]+]] = cim_meta.program "big.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [248, 256] feed dram in_bytes 2048 segment 0 label "big.w" after(%{{[0-9]+}}, %{{[0-9]+}})
// CHECK-NEXT:   %[[V127:[0-9]+]] = cim_meta.mvm "big.w" arrays <0:8> vectors 1 rows 32 cols 32 k [0, 256] n [248, 256] v [0, 1] input "input0" output "y" feed dram in_bytes 256 out_bytes 64 local_bytes 128 segment 0 label "big.w" allocs [#cim_meta.alloc<"y@chunk31" 64 bytes buffer>] after(%[[V1]], %[[V126]])
// CHECK-NEXT:   %[[V128:[0-9]+]] = cim_meta.vector "accumulate" element_ops 56 inputs ["y"] outputs ["y"] attrs {} block [1, 248, 256] cores <0:2> in_bytes 64 out_bytes 8 segment 0 label "y" after(%[[V127]])
// CHECK-NEXT:   %[[V129:[0-9]+]] = cim_meta.free [#cim_meta.place<"y@chunk31" buffer>] segment 0 label "y@chunk31" after(%[[V128]])
// CHECK-NEXT:   %[[V130:[0-9]+]] = cim_meta.store "y" 256 bytes buffer -> dram segment 0 label "output0" after(%[[V4]], %[[V8]], %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %[[V128]])
// CHECK-NEXT:   %[[V131:[0-9]+]] = cim_meta.free [#cim_meta.place<"y" buffer>] segment 0 label "y" after(%[[V4]], %[[V8]], %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}}, %[[V128]], %[[V130]])
// CHECK-NEXT: }

// -----

// Spilling: r = relu(x) is 3072 bytes, more than half of the 4096-byte global
// buffer. The relu streams the model input from DRAM; r stays in the buffer
// while the sigmoid reads it, whose output has no room there and streams to
// DRAM; then r is stored to DRAM too, and the add streams both from DRAM and
// its result (a model output) to DRAM: no final store.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @spill(%x: tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    %r = cim_tile.vector segment 0 (%x) : (tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    ^bb0(%0: tensor<1x3072xf32>):
      %1 = cim_graph.unary relu %0 : tensor<1x3072xf32> -> tensor<1x3072xf32>
      cim_tile.yield %1 : tensor<1x3072xf32>
    }
    %s = cim_tile.vector segment 0 (%r) : (tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    ^bb0(%2: tensor<1x3072xf32>):
      %3 = cim_graph.unary sigmoid %2 : tensor<1x3072xf32> -> tensor<1x3072xf32>
      cim_tile.yield %3 : tensor<1x3072xf32>
    }
    %t = cim_tile.vector segment 0 (%r, %s) : (tensor<1x3072xf32>, tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    ^bb0(%4: tensor<1x3072xf32>, %5: tensor<1x3072xf32>):
      %6 = cim_graph.binary add %4, %5 : (tensor<1x3072xf32>, tensor<1x3072xf32>) -> tensor<1x3072xf32>
      cim_tile.yield %6 : tensor<1x3072xf32>
    }
    func.return %t : tensor<1x3072xf32>
  }
}

// CHECK:      cim_meta.schedule @spill target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["t"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x3072xf32> bytes 3072
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x3072xf32> bytes 3072
// CHECK-NEXT:   cim_meta.tensor "s" : tensor<1x3072xf32> bytes 3072
// CHECK-NEXT:   cim_meta.tensor "t" : tensor<1x3072xf32> bytes 3072
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.segment 0 label "allocate r" allocs [#cim_meta.alloc<"r" 3072 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.vector "relu" element_ops 3072 inputs ["input0"] outputs ["r"] attrs {kind = #cim_graph<unary_kind relu>} cores <0:1> in_from dram in_bytes 3072 out_bytes 3072 segment 0 label "relu" after(%[[V1]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.vector "sigmoid" element_ops 12288 inputs ["r"] outputs ["s"] attrs {kind = #cim_graph<unary_kind sigmoid>} cores <0:2> in_bytes 3072 out_to dram out_bytes 3072 segment 0 label "sigmoid" after(%[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.store "r" 3072 bytes buffer -> dram segment 0 label "r" after(%[[V2]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.vector "add" element_ops 3072 inputs ["r", "s"] outputs ["t"] attrs {kind = #cim_graph<binary_kind add>} cores <1:2> in_from dram in_bytes 6144 out_to dram out_bytes 3072 segment 0 label "add" after(%[[V4]], %[[V3]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.free [#cim_meta.place<"r" buffer>] segment 0 label "r" after(%[[V2]], %[[V3]], %[[V4]])
// CHECK-NEXT: }

// -----

// A small tensor (2048 bytes, exactly half the buffer) is not spilled.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @no_spill(%x: tensor<1x2048xf32>) -> tensor<1x2048xf32> {
    %r = cim_tile.vector segment 0 (%x) : (tensor<1x2048xf32>) -> tensor<1x2048xf32> {
    ^bb0(%0: tensor<1x2048xf32>):
      %1 = cim_graph.unary relu %0 : tensor<1x2048xf32> -> tensor<1x2048xf32>
      cim_tile.yield %1 : tensor<1x2048xf32>
    }
    %s = cim_tile.vector segment 0 (%r) : (tensor<1x2048xf32>) -> tensor<1x2048xf32> {
    ^bb0(%2: tensor<1x2048xf32>):
      %3 = cim_graph.unary relu %2 : tensor<1x2048xf32> -> tensor<1x2048xf32>
      cim_tile.yield %3 : tensor<1x2048xf32>
    }
    func.return %s : tensor<1x2048xf32>
  }
}

// CHECK:      cim_meta.schedule @no_spill target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["s"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x2048xf32> bytes 2048
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x2048xf32> bytes 2048
// CHECK-NEXT:   cim_meta.tensor "s" : tensor<1x2048xf32> bytes 2048
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.segment 0 label "allocate r" allocs [#cim_meta.alloc<"r" 2048 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.vector "relu" element_ops 2048 inputs ["input0"] outputs ["r"] attrs {kind = #cim_graph<unary_kind relu>} cores <0:1> in_from dram in_bytes 2048 out_bytes 2048 segment 0 label "relu" after(%[[V1]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.segment 0 label "allocate s" allocs [#cim_meta.alloc<"s" 2048 bytes buffer>] after(%[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.vector "relu" element_ops 2048 inputs ["r"] outputs ["s"] attrs {kind = #cim_graph<unary_kind relu>} cores <1:2> in_bytes 2048 out_bytes 2048 segment 0 label "relu" after(%[[V3]], %[[V2]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.free [#cim_meta.place<"r" buffer>] segment 0 label "r" after(%[[V2]], %[[V4]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.store "s" 2048 bytes buffer -> dram segment 0 label "output0" after(%[[V4]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.free [#cim_meta.place<"s" buffer>] segment 0 label "s" after(%[[V4]], %[[V6]])
// CHECK-NEXT: }

// -----

// Weights of vector work (the layer-norm scale and bias, 32 one-byte values
// each) are loaded from DRAM after the segment barrier; layer norm costs 8
// lane operations per output element (4 x 32 x 8 = 1024). Weights read by
// vector work are not array-held: no cim_meta.weight. The vector op carries
// the norm's axis and epsilon.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @norm(%x: tensor<1x4x32xf32>) -> tensor<1x4x32xf32> {
    %g = cim_graph.weight "ln.g" : tensor<32xf32>
    %b = cim_graph.weight "ln.b" : tensor<32xf32>
    %y = cim_tile.vector segment 0 (%x, %g, %b) : (tensor<1x4x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32> {
    ^bb0(%0: tensor<1x4x32xf32>, %1: tensor<32xf32>, %2: tensor<32xf32>):
      %3 = cim_graph.layer_norm %0, %1, %2 axis -1 epsilon 1.000000e-05 : (tensor<1x4x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32>
      cim_tile.yield %3 : tensor<1x4x32xf32>
    }
    func.return %y : tensor<1x4x32xf32>
  }
}

// CHECK:      cim_meta.schedule @norm target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["y"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x4x32xf32> bytes 128
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<1x4x32xf32> bytes 128
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.segment 0 label "allocate y" allocs [#cim_meta.alloc<"y" 128 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.load "ln.g" 32 bytes dram -> buffer segment 0 label "ln.g" allocs [#cim_meta.alloc<"ln.g" 32 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.load "ln.b" 32 bytes dram -> buffer segment 0 label "ln.b" allocs [#cim_meta.alloc<"ln.b" 32 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.load "input0" 128 bytes dram -> buffer segment 0 label "input0" allocs [#cim_meta.alloc<"input0" 128 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.vector "layer_norm" element_ops 1024 inputs ["input0", "ln.g", "ln.b"] outputs ["y"] attrs {axis = -1 : i64, epsilon = 1.000000e-05 : f32} cores <0:2> in_bytes 192 out_bytes 128 segment 0 label "layer_norm" after(%[[V1]], %[[V4]], %[[V2]], %[[V3]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0" buffer>] segment 0 label "input0" after(%[[V4]], %[[V5]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.store "y" 128 bytes buffer -> dram segment 0 label "output0" after(%[[V5]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.free [#cim_meta.place<"y" buffer>] segment 0 label "y" after(%[[V5]], %[[V7]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.free [#cim_meta.place<"ln.g" buffer>] segment 0 label "ln.g" after(%[[V2]], %[[V5]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.free [#cim_meta.place<"ln.b" buffer>] segment 0 label "ln.b" after(%[[V3]], %[[V5]])
// CHECK-NEXT: }

// -----

// Small constants (cim_graph.constant) read by vector work are declared as
// cim_meta.constant with their values, once each, where first read, named
// after the value (or "const", made unique) in the tensors' namespace; the
// vector ops name them among their inputs, next to tensors and weights.
// Nothing loads them (the embedding table, a weight, stays in DRAM: the
// gather streams only the one row it picks, 4 bytes).
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @constants(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>, tensor<1x4xf32>) {
    %scale = cim_graph.constant dense<[0.5, 2.0, -1.0, 4.0]> : tensor<4xf32>
    %10 = cim_graph.constant dense<1.250000e-01> : tensor<f32>
    %11 = cim_graph.constant dense<3> : tensor<1xi64>
    %table = cim_graph.weight "emb" : tensor<8x4xf32>
    %y = cim_tile.vector segment 0 (%x, %scale) : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32> {
    ^bb0(%0: tensor<1x4xf32>, %1: tensor<4xf32>):
      %2 = cim_graph.binary mul %0, %1 : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32>
      cim_tile.yield %2 : tensor<1x4xf32>
    }
    %z = cim_tile.vector segment 0 (%y, %10) : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32> {
    ^bb0(%3: tensor<1x4xf32>, %4: tensor<f32>):
      %5 = cim_graph.binary add %3, %4 : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
      cim_tile.yield %5 : tensor<1x4xf32>
    }
    %m = cim_tile.vector segment 0 (%z, %scale) : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32> {
    ^bb0(%6: tensor<1x4xf32>, %7: tensor<4xf32>):
      %8 = cim_graph.binary sub %6, %7 : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32>
      cim_tile.yield %8 : tensor<1x4xf32>
    }
    %e = cim_tile.vector segment 0 (%table, %11) : (tensor<8x4xf32>, tensor<1xi64>) -> tensor<1x4xf32> {
    ^bb0(%12: tensor<8x4xf32>, %13: tensor<1xi64>):
      %14 = cim_graph.gather %12, %13 axis 0 : (tensor<8x4xf32>, tensor<1xi64>) -> tensor<1x4xf32>
      cim_tile.yield %14 : tensor<1x4xf32>
    }
    func.return %m, %e : tensor<1x4xf32>, tensor<1x4xf32>
  }
}

// CHECK:      cim_meta.schedule @constants target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["m", "e"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.constant "scale" = dense<[5.000000e-01, 2.000000e+00, -1.000000e+00, 4.000000e+00]> : tensor<4xf32>
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.constant "const" = dense<1.250000e-01> : tensor<f32>
// CHECK-NEXT:   cim_meta.tensor "z" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.tensor "m" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.constant "const.1" = dense<3> : tensor<1xi64>
// CHECK-NEXT:   cim_meta.tensor "e" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.segment 0 label "allocate y" allocs [#cim_meta.alloc<"y" 4 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.vector "mul" element_ops 4 inputs ["input0", "scale"] outputs ["y"] attrs {kind = #cim_graph<binary_kind mul>} cores <0:1> in_from dram in_bytes 4 out_bytes 4 segment 0 label "mul" after(%[[V1]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.segment 0 label "allocate z" allocs [#cim_meta.alloc<"z" 4 bytes buffer>] after(%[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.vector "add" element_ops 4 inputs ["y", "const"] outputs ["z"] attrs {kind = #cim_graph<binary_kind add>} cores <1:2> in_bytes 4 out_bytes 4 segment 0 label "add" after(%[[V3]], %[[V2]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.free [#cim_meta.place<"y" buffer>] segment 0 label "y" after(%[[V2]], %[[V4]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.segment 0 label "allocate m" allocs [#cim_meta.alloc<"m" 4 bytes buffer>] after(%[[V4]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.vector "sub" element_ops 4 inputs ["z", "scale"] outputs ["m"] attrs {kind = #cim_graph<binary_kind sub>} cores <0:1> in_bytes 4 out_bytes 4 segment 0 label "sub" after(%[[V6]], %[[V4]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.free [#cim_meta.place<"z" buffer>] segment 0 label "z" after(%[[V4]], %[[V7]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.store "m" 4 bytes buffer -> dram segment 0 label "output0" after(%[[V7]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.free [#cim_meta.place<"m" buffer>] segment 0 label "m" after(%[[V7]], %[[V9]])
// CHECK-NEXT:   %[[V11:[0-9]+]] = cim_meta.segment 0 label "allocate e" allocs [#cim_meta.alloc<"e" 4 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V12:[0-9]+]] = cim_meta.vector "gather" element_ops 4 inputs ["emb", "const.1"] outputs ["e"] attrs {axis = 0 : i64} cores <1:2> in_from dram in_bytes 4 out_bytes 4 segment 0 label "gather" after(%[[V11]])
// CHECK-NEXT:   %[[V13:[0-9]+]] = cim_meta.store "e" 4 bytes buffer -> dram segment 0 label "output1" after(%[[V12]])
// CHECK-NEXT:   %[[V14:[0-9]+]] = cim_meta.free [#cim_meta.place<"e" buffer>] segment 0 label "e" after(%[[V12]], %[[V13]])
// CHECK-NEXT: }

// -----

// A vector op with several results (cim_graph.split): one cim_meta.vector
// names every piece in `outputs`, with the split axis in `attrs`; each piece
// is declared and becomes ready with it, so the relu of the second piece and
// the store of the first both wait for the split.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @split(%x: tensor<1x8xf32>) -> (tensor<1x3xf32>, tensor<1x5xf32>) {
    %q, %k = cim_tile.vector segment 0 (%x) : (tensor<1x8xf32>) -> (tensor<1x3xf32>, tensor<1x5xf32>) {
    ^bb0(%0: tensor<1x8xf32>):
      %1, %2 = cim_graph.split %0 axis 1 : tensor<1x8xf32> -> (tensor<1x3xf32>, tensor<1x5xf32>)
      cim_tile.yield %1, %2 : tensor<1x3xf32>, tensor<1x5xf32>
    }
    %r = cim_tile.vector segment 0 (%k) : (tensor<1x5xf32>) -> tensor<1x5xf32> {
    ^bb0(%3: tensor<1x5xf32>):
      %4 = cim_graph.unary relu %3 : tensor<1x5xf32> -> tensor<1x5xf32>
      cim_tile.yield %4 : tensor<1x5xf32>
    }
    func.return %q, %r : tensor<1x3xf32>, tensor<1x5xf32>
  }
}

// CHECK:      cim_meta.schedule @split target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["q", "r"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x8xf32> bytes 8
// CHECK-NEXT:   cim_meta.tensor "q" : tensor<1x3xf32> bytes 3
// CHECK-NEXT:   cim_meta.tensor "k" : tensor<1x5xf32> bytes 5
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x5xf32> bytes 5
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.segment 0 label "allocate q" allocs [#cim_meta.alloc<"q" 3 bytes buffer>, #cim_meta.alloc<"k" 5 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.vector "split" element_ops 8 inputs ["input0"] outputs ["q", "k"] attrs {axis = 1 : i64} cores <0:1> in_from dram in_bytes 8 out_bytes 8 segment 0 label "split" after(%[[V1]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.store "q" 3 bytes buffer -> dram segment 0 label "output0" after(%[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.free [#cim_meta.place<"q" buffer>] segment 0 label "q" after(%[[V2]], %[[V3]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.segment 0 label "allocate r" allocs [#cim_meta.alloc<"r" 5 bytes buffer>] after(%[[V2]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.vector "relu" element_ops 5 inputs ["k"] outputs ["r"] attrs {kind = #cim_graph<unary_kind relu>} cores <1:2> in_bytes 5 out_bytes 5 segment 0 label "relu" after(%[[V5]], %[[V2]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.free [#cim_meta.place<"k" buffer>] segment 0 label "k" after(%[[V2]], %[[V6]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.store "r" 5 bytes buffer -> dram segment 0 label "output1" after(%[[V6]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.free [#cim_meta.place<"r" buffer>] segment 0 label "r" after(%[[V6]], %[[V8]])
// CHECK-NEXT: }

// -----

// A KV cache kept in memory-mode arrays: the kv_cache buffer (segment 0, 2
// arrays) holds the argument %past (named by its name hint; its trace name is
// input1) for the whole run. The 40-byte tensor needs one 256-byte array and
// gets the spare one too: it is declared as starting in arrays 0-1, which
// start in memory mode (no switch), and the add, a residual of l1.w's
// outputs, rides on their accumulation, which streams it from there instead
// of from DRAM (%s is then a view of %h). Everything else starts at array
// 2: l1.w's 5 arrays (2-6), segment 0's activations buffer right after them (7, the
// only array switched to memory and back), and segment 1's streamed l2.w
// (2 row tiles x 8 column tiles = 16 arrays) in chunks of at most the 6
// arrays 2-7 (3 + 3 + 2 column tiles, as its allocation says: 3 chunks).
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @kv_cache(%x: tensor<1x32xf32>, %past: tensor<1x40xf32>) -> tensor<1x64xf32> {
    cim_tile.memory_buffer kv_cache arrays 2 bytes 512 segment 0 holds ["past"] mode <memory>
    cim_tile.memory_buffer activations arrays 1 bytes 256 segment 0 mode <memory>
    %h = cim_tile.mvm %x weight "l1.w" layout kn tiling <k = 32, n = 40, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 5, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x40xf32>
    %s = cim_tile.vector segment 0 (%h, %past) : (tensor<1x40xf32>, tensor<1x40xf32>) -> tensor<1x40xf32> {
    ^bb0(%0: tensor<1x40xf32>, %1: tensor<1x40xf32>):
      %2 = cim_graph.binary add %0, %1 : (tensor<1x40xf32>, tensor<1x40xf32>) -> tensor<1x40xf32>
      cim_tile.yield %2 : tensor<1x40xf32>
    }
    %y = cim_tile.mvm %s weight "l2.w" layout kn tiling <k = 40, n = 64, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 8, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 3> mode <compute> : tensor<1x40xf32> -> tensor<1x64xf32>
    func.return %y : tensor<1x64xf32>
  }
}

// CHECK:      cim_meta.schedule @kv_cache target "tiny" strategy "static" batch 1 inputs ["input0", "input1"] outputs ["y"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x32xf32> bytes 32
// CHECK-NEXT:   cim_meta.tensor "input1" : tensor<1x40xf32> bytes 40 arrays <0:2>
// CHECK-NEXT:   cim_meta.weight "l1.w" layout kn groups 1 k 32 n 40
// CHECK-NEXT:   cim_meta.tensor "h" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.tensor "s" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.weight "l2.w" layout kn groups 1 k 40 n 64
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<1x64xf32> bytes 64
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.switch arrays <7:8> to <memory> segment 0 after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.program "l1.w" arrays <2:7> rows 32 cols 32 k [0, 32] n [0, 40] feed dram in_bytes 1280 segment 0 label "l1.w" after(%[[V0]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.segment 0 label "allocate h" allocs [#cim_meta.alloc<"h" 40 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.load "input0" 32 bytes dram -> buffer segment 0 label "input0" allocs [#cim_meta.alloc<"input0[0:1]@in" 32 bytes buffer>] after(%[[V3]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.move "input0" 32 bytes in cores <0:2> segment 0 label "l1.w" allocs [#cim_meta.alloc<"input0[0:1]" 104 bytes local cores <0:2>>] after(%[[V3]], %[[V4]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:1]@in" buffer>] segment 0 label "input0[0:1]@in" after(%[[V5]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.mvm "l1.w" arrays <2:7> vectors 1 rows 32 cols 32 k [0, 32] n [0, 40] v [0, 1] input "input0" output "h" local_bytes 32 segment 0 label "l1.w" after(%[[V5]], %[[V2]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.vector "accumulate" element_ops 40 inputs ["h", "input1"] outputs ["h"] attrs {residual = "rows"} block [0, 0, 1] cores <0:2> in_from memory in_arrays <0:2> in_bytes 40 segment 0 label "h" after(%[[V7]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.move "h" 40 bytes out cores <0:2> block [0, 0, 1] segment 0 label "l1.w" after(%[[V8]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:1]" local cores <0:2>>] segment 0 label "input0[0:1]" after(%[[V9]], %[[V7]])
// CHECK-NEXT:   %[[V11:[0-9]+]] = cim_meta.vector "reshape" element_ops 0 inputs ["h"] outputs ["s"] attrs {} cores <0:1> segment 0 label "reshape" after(%[[V9]])
// CHECK-NEXT:   %[[V12:[0-9]+]] = cim_meta.segment 1 after(%[[V1]], %[[V6]], %[[V10]], %[[V11]])
// CHECK-NEXT:   %[[V13:[0-9]+]] = cim_meta.switch arrays <7:8> to <compute> segment 1 after(%[[V12]])
// CHECK-NEXT:   %[[V14:[0-9]+]] = cim_meta.segment 1 label "allocate y" allocs [#cim_meta.alloc<"y" 64 bytes buffer>] after(%[[V11]])
// CHECK-NEXT:   %[[V15:[0-9]+]] = cim_meta.program "l2.w" arrays <2:8> rows 32 cols 32 k [0, 40] n [0, 24] feed dram in_bytes 960 segment 1 label "l2.w" after(%[[V13]], %[[V1]], %[[V2]], %[[V7]])
// CHECK-NEXT:   %[[V16:[0-9]+]] = cim_meta.mvm "l2.w" arrays <2:8> vectors 1 rows 32 cols 32 k [0, 40] n [0, 24] v [0, 1] input "s" output "y" feed buffer in_bytes 40 local_bytes 40 segment 1 label "l2.w" after(%[[V11]], %[[V14]], %[[V15]])
// CHECK-NEXT:   %[[V17:[0-9]+]] = cim_meta.vector "accumulate" element_ops 24 inputs ["y"] outputs ["y"] attrs {} block [1, 0, 24] cores <0:2> out_bytes 24 segment 1 label "y" after(%[[V16]])
// CHECK-NEXT:   %[[V18:[0-9]+]] = cim_meta.program "l2.w" arrays <2:8> rows 32 cols 32 k [0, 40] n [24, 48] feed dram in_bytes 960 segment 1 label "l2.w" after(%[[V17]], %[[V13]], %[[V15]])
// CHECK-NEXT:   %[[V19:[0-9]+]] = cim_meta.mvm "l2.w" arrays <2:8> vectors 1 rows 32 cols 32 k [0, 40] n [24, 48] v [0, 1] input "s" output "y" feed buffer in_bytes 40 local_bytes 40 segment 1 label "l2.w" after(%[[V11]], %[[V14]], %[[V18]])
// CHECK-NEXT:   %[[V20:[0-9]+]] = cim_meta.vector "accumulate" element_ops 24 inputs ["y"] outputs ["y"] attrs {} block [1, 24, 48] cores <0:2> out_bytes 24 segment 1 label "y" after(%[[V19]])
// CHECK-NEXT:   %[[V21:[0-9]+]] = cim_meta.program "l2.w" arrays <2:6> rows 32 cols 32 k [0, 40] n [48, 64] feed dram in_bytes 640 segment 1 label "l2.w" after(%[[V20]], %[[V13]], %[[V18]])
// CHECK-NEXT:   %[[V22:[0-9]+]] = cim_meta.mvm "l2.w" arrays <2:6> vectors 1 rows 32 cols 32 k [0, 40] n [48, 64] v [0, 1] input "s" output "y" feed buffer in_bytes 40 local_bytes 40 segment 1 label "l2.w" after(%[[V11]], %[[V14]], %[[V21]])
// CHECK-NEXT:   %[[V23:[0-9]+]] = cim_meta.vector "accumulate" element_ops 16 inputs ["y"] outputs ["y"] attrs {} block [1, 48, 64] cores <0:2> out_bytes 16 segment 1 label "y" after(%[[V22]])
// CHECK-NEXT:   %[[V24:[0-9]+]] = cim_meta.free [#cim_meta.place<"h" buffer>] segment 1 label "h" after(%[[V9]], %[[V11]], %[[V16]], %[[V19]], %[[V22]])
// CHECK-NEXT:   %[[V25:[0-9]+]] = cim_meta.store "y" 64 bytes buffer -> dram segment 1 label "output0" after(%[[V17]], %[[V20]], %[[V23]])
// CHECK-NEXT:   %[[V26:[0-9]+]] = cim_meta.free [#cim_meta.place<"y" buffer>] segment 1 label "y" after(%[[V17]], %[[V20]], %[[V23]], %[[V25]])
// CHECK-NEXT: }

// -----

// A weight staged in place: segment 0 puts a.w on arrays 0-3 and its weights
// buffer at the far end (4-7), and loads b.w there from DRAM while it
// computes, in the layout compute mode reads. Segment 1 is laid out from
// that end down, b.w first, so its copy is on the arrays that hold it: the
// arrays switch to compute mode in place (a program fed by its own cells:
// no load, no stream, no memory-mode free).
builtin.module {
  func.func @staged(%x: tensor<4x32xf32>) -> tensor<4x32xf32> {
    cim_tile.memory_buffer weights arrays 4 bytes 1024 segment 0 mode <memory>
    %a = cim_tile.mvm %x weight "a.w" layout kn tiling <k = 32, n = 32, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 4, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x32xf32>
    %b = cim_tile.mvm %a weight "b.w" layout kn tiling <k = 32, n = 32, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 4, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x32xf32>
    func.return %b : tensor<4x32xf32>
  }
}

// CHECK-LABEL: cim_meta.schedule @staged
// CHECK:         %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:    %[[MEM:[0-9]+]] = cim_meta.switch arrays <4:8> to <memory> segment 0 after(%[[S0]])
// CHECK-NEXT:    cim_meta.program "a.w" arrays <0:4> {{.*}} feed dram
// CHECK:         %[[STAGE:[0-9]+]] = cim_meta.load "b.w" 1024 bytes dram -> memory arrays <4:8> segment 0 label "b.w" allocs [#cim_meta.alloc<"b.w" 1024 bytes memory arrays <4:8>>] after(%[[MEM]], %[[S0]]
// CHECK-NEXT:    %[[S1:[0-9]+]] = cim_meta.segment 1 after(
// CHECK-NEXT:    %[[IN:[0-9]+]] = cim_meta.program "b.w" arrays <4:8> rows 32 cols 32 k [0, 32] n [0, 32] feed cells segment 1 label "b.w" after(%[[STAGE]], %[[S1]])
// CHECK-NOT:     cim_meta.switch
// CHECK-NOT:     cim_meta.free [#cim_meta.place<"b.w" memory
// CHECK:         cim_meta.mvm "b.w" arrays <4:8> {{.*}} after({{.*}}%[[IN]])

// -----

// A tensor held in a ring of its bands: %a (640 rows of 8 one-byte values,
// 5120 bytes) does not fit tiny's 4096-byte global buffer, but l2.w reads
// it row band by row band (8 bands of 80 rows, 640 bytes each) right behind
// l1.w. It lives in two slots of one band (1280 bytes) instead of going to
// DRAM: bands 0 and 1 allocate a slot each; band 2 goes into slot 0 once
// the reads of band 0 (l2.w's moves of its rows into its cores) are done,
// and l1.w's ops for band 2 wait for that gate. The gates wait for ops
// emitted after them, so the pass orders the schedule by what waits for
// what (each gate right after the reads it waits for).
builtin.module attributes {cim_tile.strategy = "pimcomp-ll"} {
  func.func @ring(%x: tensor<640x32xf32>) -> tensor<640x24xf32> {
    cim_tile.dataflow segment 0 rows blocks 8
    %a = cim_tile.mvm %x weight "l1.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<640x32xf32> -> tensor<640x8xf32>
    %b = cim_tile.mvm %a weight "l2.w" layout kn tiling <k = 8, n = 24, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 3, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<640x8xf32> -> tensor<640x24xf32>
    func.return %b : tensor<640x24xf32>
  }
}

// CHECK-LABEL: cim_meta.schedule @ring
// CHECK:         %[[SLOT0:[0-9]+]] = cim_meta.segment 0 label "allocate a slot 0" allocs [#cim_meta.alloc<"a" 640 bytes buffer>]
// CHECK:         cim_meta.segment 0 label "allocate a slot 1" allocs [#cim_meta.alloc<"a" 640 bytes buffer>]
// CHECK:         %[[READ:[0-9]+]] = cim_meta.move "a" 64 bytes in cores <0:1> block [0, 0, 80] segment 0 label "l2.w"
// CHECK:         %[[GATE:[0-9]+]] = cim_meta.segment 0 label "a band 2 into slot 0" after(%[[SLOT0]], %[[READ]],
// CHECK-NEXT:    cim_meta.load "input0" {{.*}} after(%[[GATE]],
// CHECK-NOT:     #cim_meta.alloc<"a" {{[0-9]+}} bytes buffer>
// CHECK:         cim_meta.segment 0 label "a band 7 into slot 1"
// CHECK-NOT:     cim_meta.store "a"
// CHECK:         cim_meta.free [#cim_meta.place<"a" buffer>]

// Activation-by-activation matmuls on arrays (Inputs/dynamic_matmul.mlir on
// tiny_dynamic: tiny with array.dynamic_matmul = true). The scores q @ kt of
// 2 heads: q is read as 4 rows of 2 x 8 (rows first: a transpose the MVM's
// input address generator does, so a view like the reshape after it, with
// no work and no bytes); kt is declared as a weight of 2 blocks of 8 x 8 and
// written into arrays 0-1 from DRAM (one block per array: 8 outputs x 4 bit
// slices fill an array's 32 columns) by a tensor program streaming its 128
// bytes; the rows stream through from DRAM (64 bytes in, 64 out to the
// buffer), and the 4 x 16 result is seen as [2, 4, 8] again (the output
// address generator's transpose). The second matmul writes v into the same
// arrays only after the first MVM is done with them.
// DYNAMIC:      cim_meta.schedule @attention target "{{.*}}tiny_dynamic.toml"
// DYNAMIC:        cim_meta.weight "input1" layout kn groups 2 k 8 n 8
// DYNAMIC:        cim_meta.weight "input2" layout kn groups 2 k 8 n 8
// DYNAMIC:        %[[T:[0-9]+]] = cim_meta.vector "transpose" element_ops 0 inputs ["input0"] outputs ["s.lhs_rows"] attrs {perm = array<i64: 1, 0, 2>} cores <0:1> in_from dram out_to dram segment 0
// DYNAMIC-NEXT:   %[[R:[0-9]+]] = cim_meta.vector "reshape" element_ops 0 inputs ["s.lhs_rows"] outputs ["s.lhs_matrix"]
// DYNAMIC-NEXT:   %[[A:[0-9]+]] = cim_meta.segment 0 label "allocate s.matrix"
// DYNAMIC-NEXT:   %[[P:[0-9]+]] = cim_meta.program "input1" arrays <0:2> rows 8 cols 32 k [0, 16] n [0, 16] source tensor feed dram in_bytes 128 segment 0 label "input1" after(%{{[0-9]+}})
// DYNAMIC-NEXT:   %[[M:[0-9]+]] = cim_meta.mvm "input1" arrays <0:2> vectors 4 rows 8 cols 32 k [0, 16] n [0, 16] v [0, 4] input "s.lhs_matrix" output "s.matrix" feed dram in_bytes 64 out_bytes 64 local_bytes 64 segment 0 label "input1" after(%[[R]], %[[A]], %[[P]])
// DYNAMIC-NEXT:   %{{[0-9]+}} = cim_meta.vector "reshape" element_ops 0 inputs ["s.matrix"] outputs ["s.rows"]
// DYNAMIC-NEXT:   %{{[0-9]+}} = cim_meta.vector "transpose" element_ops 0 inputs ["s.rows"] outputs ["s"] attrs {perm = array<i64: 1, 0, 2>}
// DYNAMIC:        cim_meta.program "input2" arrays <0:2> rows 8 cols 32 k [0, 16] n [0, 16] source tensor feed dram in_bytes 128 segment 0 label "input2" after(%[[M]])
// DYNAMIC-NEXT:   cim_meta.mvm "input2" {{.*}} input "o.lhs_matrix" output "o.matrix" feed buffer
