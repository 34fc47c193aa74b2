// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Round trip of every cim_tile op and attribute, in the custom format (first
// RUN), through the generic format (second RUN), and the generic form itself
// (GENERIC). The module attributes spell each attribute in its standalone form.

builtin.module attributes {test.tiling = #cim_tile.tiling<k = 576, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 5, col_tiles = 2, groups_per_array = 1>, test.alloc = #cim_tile.alloc<segment = 2, copies = 4, chunks = 1>, test.mode = #cim_tile.mode<memory>, test.layout = #cim_tile<layout kn>, test.role = #cim_tile<role weights>} {
// CHECK: builtin.module attributes {test.tiling = #cim_tile.tiling<k = 576, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 5, col_tiles = 2, groups_per_array = 1>, test.alloc = #cim_tile.alloc<segment = 2, copies = 4, chunks = 1>, test.mode = #cim_tile.mode<memory>, test.layout = #cim_tile<layout kn>, test.role = #cim_tile<role weights>} {
  func.func @tile(%x: tensor<1x16x8x8xf32>, %v: tensor<1x64xf32>, %h: tensor<4x512xf32>, %s: tensor<1x2x4x4xf32>) {
  // CHECK-NEXT: func.func @tile(%x: tensor<1x16x8x8xf32>, %v: tensor<1x64xf32>, %h: tensor<4x512xf32>, %s: tensor<1x2x4x4xf32>) {
    %cols = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x16x8x8xf32> -> tensor<64x144xf32>
    // CHECK-NEXT: %cols = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x16x8x8xf32> -> tensor<64x144xf32>
    // GENERIC: %cols = "cim_tile.im2col"(%x) <{kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64}> : (tensor<1x16x8x8xf32>) -> tensor<64x144xf32>
    %conv = cim_tile.mvm %cols weight "conv.weight" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // CHECK-NEXT: %conv = cim_tile.mvm %cols weight "conv.weight" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // GENERIC: %conv = "cim_tile.mvm"(%cols) <{weight = "conv.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1>, alloc = #cim_tile.alloc<segment = 0, copies = 1, chunks = 1>, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x32xf32>
    %sliced = cim_tile.mvm %cols weight "sliced.weight" layout oihw tiling <k = 140, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [2, 1]> compacted_from 144 mode <compute> : tensor<64x144xf32> -> tensor<64x64xf32>
    // CHECK-NEXT: %sliced = cim_tile.mvm %cols weight "sliced.weight" layout oihw tiling <k = 140, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [2, 1]> compacted_from 144 mode <compute> : tensor<64x144xf32> -> tensor<64x64xf32>
    // GENERIC: %sliced = "cim_tile.mvm"(%cols) <{weight = "sliced.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 140, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [2, 1]>, compacted_from = 144 : i64, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x64xf32>
    %img = cim_tile.col2im %conv : tensor<64x32xf32> -> tensor<1x32x8x8xf32>
    // CHECK-NEXT: %img = cim_tile.col2im %conv : tensor<64x32xf32> -> tensor<1x32x8x8xf32>
    // GENERIC: %img = "cim_tile.col2im"(%conv) : (tensor<64x32xf32>) -> tensor<1x32x8x8xf32>
    %dcols = cim_tile.im2col %x kernel [3, 3] strides [2, 2] pads [2, 2, 2, 2] dilations [2, 2] groups 16 : tensor<1x16x8x8xf32> -> tensor<16x144xf32>
    // CHECK-NEXT: %dcols = cim_tile.im2col %x kernel [3, 3] strides [2, 2] pads [2, 2, 2, 2] dilations [2, 2] groups 16 : tensor<1x16x8x8xf32> -> tensor<16x144xf32>
    // GENERIC: %dcols = "cim_tile.im2col"(%x) <{kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 2, 2, 2, 2>, dilations = array<i64: 2, 2>, groups = 16 : i64}> : (tensor<1x16x8x8xf32>) -> tensor<16x144xf32>
    %dconv = cim_tile.mvm %dcols weight "dw.weight" layout oihw tiling <k = 9, n = 1, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 14> mode <compute> : tensor<16x144xf32> -> tensor<16x16xf32>
    // CHECK-NEXT: %dconv = cim_tile.mvm %dcols weight "dw.weight" layout oihw tiling <k = 9, n = 1, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 14> mode <compute> : tensor<16x144xf32> -> tensor<16x16xf32>
    // GENERIC: %dconv = "cim_tile.mvm"(%dcols) <{weight = "dw.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 9, n = 1, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 14>, mode = #cim_tile.mode<compute>}> : (tensor<16x144xf32>) -> tensor<16x16xf32>
    %nm = cim_tile.mvm %cols weight "nm.weight" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 intra_block 4 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // CHECK-NEXT: %nm = cim_tile.mvm %cols weight "nm.weight" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 intra_block 4 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // GENERIC: %nm = "cim_tile.mvm"(%cols) <{weight = "nm.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1>, compacted_from = 144 : i64, intra_block = 4 : i64, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x32xf32>
    %flex = cim_tile.mvm %cols weight "flex.weight" layout oihw tiling <k = 36, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 intra_block 4 driven_rows 72 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // CHECK-NEXT: %flex = cim_tile.mvm %cols weight "flex.weight" layout oihw tiling <k = 36, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 intra_block 4 driven_rows 72 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // GENERIC: %flex = "cim_tile.mvm"(%cols) <{weight = "flex.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 36, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1>, compacted_from = 144 : i64, intra_block = 4 : i64, driven_rows = 72 : i64, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x32xf32>
    %gather = cim_tile.mvm %cols weight "gather.weight" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 input_rows 108 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // CHECK-NEXT: %gather = cim_tile.mvm %cols weight "gather.weight" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 input_rows 108 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // GENERIC: %gather = "cim_tile.mvm"(%cols) <{weight = "gather.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1>, compacted_from = 144 : i64, input_rows = 108 : i64, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x32xf32>
    %channels = cim_tile.mvm %cols weight "channels.weight" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 index_block 9 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // CHECK-NEXT: %channels = cim_tile.mvm %cols weight "channels.weight" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 index_block 9 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // GENERIC: %channels = "cim_tile.mvm"(%cols) <{weight = "channels.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1>, compacted_from = 144 : i64, index_block = 9 : i64, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x32xf32>
    %filters = cim_tile.mvm %cols weight "filters.weight" layout oihw tiling <k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> columns_from 32 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // CHECK-NEXT: %filters = cim_tile.mvm %cols weight "filters.weight" layout oihw tiling <k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> columns_from 32 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // GENERIC: %filters = "cim_tile.mvm"(%cols) <{weight = "filters.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1>, columns_from = 32 : i64, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x32xf32>
    %tall = cim_tile.mvm %cols weight "tall.weight" layout oihw tiling <k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> columns_from 32 misaligned_columns mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // CHECK-NEXT: %tall = cim_tile.mvm %cols weight "tall.weight" layout oihw tiling <k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> columns_from 32 misaligned_columns mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>
    // GENERIC: %tall = "cim_tile.mvm"(%cols) <{weight = "tall.weight", layout = #cim_tile<layout oihw>, tiling = #cim_tile.tiling<k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1>, columns_from = 32 : i64, misaligned_columns, mode = #cim_tile.mode<compute>}> : (tensor<64x144xf32>) -> tensor<64x32xf32>
    %dimg = cim_tile.col2im %dconv : tensor<16x16xf32> -> tensor<1x16x4x4xf32>
    // CHECK-NEXT: %dimg = cim_tile.col2im %dconv : tensor<16x16xf32> -> tensor<1x16x4x4xf32>
    // GENERIC: %dimg = "cim_tile.col2im"(%dconv) : (tensor<16x16xf32>) -> tensor<1x16x4x4xf32>
    %fc = cim_tile.mvm %v weight "fc.weight" layout nk bias "fc.bias" tiling <k = 64, n = 10, groups = 1, rows = 128, cols = 128, bit_slices = 8, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 1, copies = 2, chunks = 1> mode <compute> : tensor<1x64xf32> -> tensor<1x10xf32>
    // CHECK-NEXT: %fc = cim_tile.mvm %v weight "fc.weight" layout nk bias "fc.bias" tiling <k = 64, n = 10, groups = 1, rows = 128, cols = 128, bit_slices = 8, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 1, copies = 2, chunks = 1> mode <compute> : tensor<1x64xf32> -> tensor<1x10xf32>
    // GENERIC: %fc = "cim_tile.mvm"(%v) <{weight = "fc.weight", layout = #cim_tile<layout nk>, bias = "fc.bias", tiling = #cim_tile.tiling<k = 64, n = 10, groups = 1, rows = 128, cols = 128, bit_slices = 8, row_tiles = 1, col_tiles = 1, groups_per_array = 1>, alloc = #cim_tile.alloc<segment = 1, copies = 2, chunks = 1>, mode = #cim_tile.mode<compute>}> : (tensor<1x64xf32>) -> tensor<1x10xf32>
    %big = cim_tile.mvm %h weight "ffn.weight" layout kn tiling <k = 512, n = 256, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 4, col_tiles = 8, groups_per_array = 1> alloc <segment = 3, copies = 1, chunks = 4> mode <compute> : tensor<4x512xf32> -> tensor<4x256xf32>
    // CHECK-NEXT: %big = cim_tile.mvm %h weight "ffn.weight" layout kn tiling <k = 512, n = 256, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 4, col_tiles = 8, groups_per_array = 1> alloc <segment = 3, copies = 1, chunks = 4> mode <compute> : tensor<4x512xf32> -> tensor<4x256xf32>
    // GENERIC: %big = "cim_tile.mvm"(%h) <{weight = "ffn.weight", layout = #cim_tile<layout kn>, tiling = #cim_tile.tiling<k = 512, n = 256, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 4, col_tiles = 8, groups_per_array = 1>, alloc = #cim_tile.alloc<segment = 3, copies = 1, chunks = 4>, mode = #cim_tile.mode<compute>}> : (tensor<4x512xf32>) -> tensor<4x256xf32>
    %sm = cim_tile.vector segment 0 (%s) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    // CHECK-NEXT: %sm = cim_tile.vector segment 0{{ ?}}(%s) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    // GENERIC: %sm = "cim_tile.vector"(%s) <{segment = 0 : i64}> ({
    ^bb0(%a: tensor<1x2x4x4xf32>):
    // CHECK-NEXT: ^bb0(%a: tensor<1x2x4x4xf32>):
      %r = cim_graph.softmax %a axis -1 : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
      // CHECK-NEXT: %r = cim_graph.softmax %a axis -1 : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
      // GENERIC: %r = "cim_graph.softmax"(%a) <{axis = -1 : i64}> : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
      cim_tile.yield %r : tensor<1x2x4x4xf32>
      // CHECK-NEXT: cim_tile.yield %r : tensor<1x2x4x4xf32>
      // GENERIC: "cim_tile.yield"(%r) : (tensor<1x2x4x4xf32>) -> ()
    }
    // CHECK-NEXT: }
    %g = cim_graph.weight "ln.weight" : tensor<32xf32>
    // CHECK-NEXT: %g = cim_graph.weight "ln.weight" : tensor<32xf32>
    // GENERIC: %g = "cim_graph.weight"() <{name = "ln.weight"}> : () -> tensor<32xf32>
    %ln = cim_tile.vector segment 1 (%conv, %g) : (tensor<64x32xf32>, tensor<32xf32>) -> tensor<64x32xf32> {
    // CHECK-NEXT: %ln = cim_tile.vector segment 1{{ ?}}(%conv, %g) : (tensor<64x32xf32>, tensor<32xf32>) -> tensor<64x32xf32> {
    // GENERIC: %ln = "cim_tile.vector"(%conv, %g) <{segment = 1 : i64}> ({
    ^bb0(%a_1: tensor<64x32xf32>, %b: tensor<32xf32>):
    // CHECK-NEXT: ^bb0(%a_1: tensor<64x32xf32>, %b: tensor<32xf32>):
      %r_1 = cim_graph.rms_norm %a_1, %b axis -1 epsilon 1.000000e-05 : (tensor<64x32xf32>, tensor<32xf32>) -> tensor<64x32xf32>
      // CHECK-NEXT: %r_1 = cim_graph.rms_norm %a_1, %b axis -1 epsilon 1.000000e-05 : (tensor<64x32xf32>, tensor<32xf32>) -> tensor<64x32xf32>
      // GENERIC: %r_1 = "cim_graph.rms_norm"(%a_1, %b) <{axis = -1 : i64, epsilon = 1.000000e-05 : f32}> : (tensor<64x32xf32>, tensor<32xf32>) -> tensor<64x32xf32>
      cim_tile.yield %r_1 : tensor<64x32xf32>
      // CHECK-NEXT: cim_tile.yield %r_1 : tensor<64x32xf32>
      // GENERIC: "cim_tile.yield"(%r_1) : (tensor<64x32xf32>) -> ()
    }
    // CHECK-NEXT: }
    %qk = cim_tile.vector segment 0 matmul_arrays 2 (%s, %s) : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    // CHECK-NEXT: %qk = cim_tile.vector segment 0 matmul_arrays 2{{ ?}}(%s, %s) : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    // GENERIC: %qk = "cim_tile.vector"(%s, %s) <{segment = 0 : i64, matmul_arrays = 2 : i64}> ({
    ^bb0(%qa: tensor<1x2x4x4xf32>, %qb: tensor<1x2x4x4xf32>):
    // CHECK-NEXT: ^bb0(%qa: tensor<1x2x4x4xf32>, %qb: tensor<1x2x4x4xf32>):
      %qr = cim_graph.matmul %qa, %qb : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
      // CHECK-NEXT: %qr = cim_graph.matmul %qa, %qb : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
      cim_tile.yield %qr : tensor<1x2x4x4xf32>
      // CHECK-NEXT: cim_tile.yield %qr : tensor<1x2x4x4xf32>
    }
    // CHECK-NEXT: }
    %lo, %hi = cim_tile.vector (%conv) : (tensor<64x32xf32>) -> (tensor<64x16xf32>, tensor<64x16xf32>) {
    // CHECK-NEXT: %lo, %hi = cim_tile.vector{{ ?}}(%conv) : (tensor<64x32xf32>) -> (tensor<64x16xf32>, tensor<64x16xf32>) {
    // GENERIC: %lo, %hi = "cim_tile.vector"(%conv) ({
    ^bb0(%a_2: tensor<64x32xf32>):
    // CHECK-NEXT: ^bb0(%a_2: tensor<64x32xf32>):
      %p, %q = cim_graph.split %a_2 axis 1 : tensor<64x32xf32> -> (tensor<64x16xf32>, tensor<64x16xf32>)
      // CHECK-NEXT: %p, %q = cim_graph.split %a_2 axis 1 : tensor<64x32xf32> -> (tensor<64x16xf32>, tensor<64x16xf32>)
      // GENERIC: %p, %q = "cim_graph.split"(%a_2) <{axis = 1 : i64}> : (tensor<64x32xf32>) -> (tensor<64x16xf32>, tensor<64x16xf32>)
      cim_tile.yield %p, %q : tensor<64x16xf32>, tensor<64x16xf32>
      // CHECK-NEXT: cim_tile.yield %p, %q : tensor<64x16xf32>, tensor<64x16xf32>
      // GENERIC: "cim_tile.yield"(%p, %q) : (tensor<64x16xf32>, tensor<64x16xf32>) -> ()
    }
    // CHECK-NEXT: }
    cim_tile.memory_buffer activations arrays 4 bytes 65536 segment 0 mode <memory>
    // CHECK-NEXT: cim_tile.memory_buffer activations arrays 4 bytes 65536 segment 0 mode <memory>
    // GENERIC: "cim_tile.memory_buffer"() <{role = #cim_tile<role activations>, arrays = 4 : i64, bytes = 65536 : i64, segment = 0 : i64, mode = #cim_tile.mode<memory>}> : () -> ()
    cim_tile.memory_buffer chunks arrays 6 bytes 76800 segment 0 mode <memory>
    // CHECK-NEXT: cim_tile.memory_buffer chunks arrays 6 bytes 76800 segment 0 mode <memory>
    // GENERIC: "cim_tile.memory_buffer"() <{role = #cim_tile<role chunks>, arrays = 6 : i64, bytes = 76800 : i64, segment = 0 : i64, mode = #cim_tile.mode<memory>}> : () -> ()
    cim_tile.memory_buffer inputs arrays 21 bytes 268800 segment 1 mode <memory>
    // CHECK-NEXT: cim_tile.memory_buffer inputs arrays 21 bytes 268800 segment 1 mode <memory>
    // GENERIC: "cim_tile.memory_buffer"() <{role = #cim_tile<role inputs>, arrays = 21 : i64, bytes = 268800 : i64, segment = 1 : i64, mode = #cim_tile.mode<memory>}> : () -> ()
    cim_tile.memory_buffer kv_cache arrays 8 bytes 102400 segment 1 holds ["past.0.key", "past.0.value"] mode <memory>
    // CHECK-NEXT: cim_tile.memory_buffer kv_cache arrays 8 bytes 102400 segment 1 holds ["past.0.key", "past.0.value"] mode <memory>
    // GENERIC: "cim_tile.memory_buffer"() <{role = #cim_tile<role kv_cache>, arrays = 8 : i64, bytes = 102400 : i64, segment = 1 : i64, holds = ["past.0.key", "past.0.value"], mode = #cim_tile.mode<memory>}> : () -> ()
    cim_tile.memory_buffer weights arrays 1 bytes 1 segment 2 mode <memory> {test.note = "streamed"}
    // CHECK-NEXT: cim_tile.memory_buffer weights arrays 1 bytes 1 segment 2 mode <memory> {test.note = "streamed"}
    // GENERIC: "cim_tile.memory_buffer"() <{role = #cim_tile<role weights>, arrays = 1 : i64, bytes = 1 : i64, segment = 2 : i64, mode = #cim_tile.mode<memory>}> {test.note = "streamed"} : () -> ()
    cim_tile.dataflow segment 0 rows blocks 8
    // CHECK-NEXT: cim_tile.dataflow segment 0 rows blocks 8
    // GENERIC: "cim_tile.dataflow"() <{segment = 0 : i64, kind = #cim_tile<dataflow_kind rows>, blocks = 8 : i64}> : () -> ()
    cim_tile.dataflow segment 1 batch blocks 4
    // CHECK-NEXT: cim_tile.dataflow segment 1 batch blocks 4
    // GENERIC: "cim_tile.dataflow"() <{segment = 1 : i64, kind = #cim_tile<dataflow_kind batch>, blocks = 4 : i64}> : () -> ()
    cim_tile.dataflow segment 2 layer blocks 1
    // CHECK-NEXT: cim_tile.dataflow segment 2 layer blocks 1
    // GENERIC: "cim_tile.dataflow"() <{segment = 2 : i64, kind = #cim_tile<dataflow_kind layer>, blocks = 1 : i64}> : () -> ()
    %aligned = cim_tile.mvm %h weight "ffn.weight" layout kn tiling <k = 512, n = 256, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 4, col_tiles = 8, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> align 64 mode <compute> : tensor<4x512xf32> -> tensor<4x256xf32>
    // CHECK-NEXT: %aligned = cim_tile.mvm %h weight "ffn.weight" layout kn tiling <k = 512, n = 256, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 4, col_tiles = 8, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> align 64 mode <compute> : tensor<4x512xf32> -> tensor<4x256xf32>
    // GENERIC: %aligned = "cim_tile.mvm"(%h) <{weight = "ffn.weight", layout = #cim_tile<layout kn>, tiling = #cim_tile.tiling<k = 512, n = 256, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 4, col_tiles = 8, groups_per_array = 1>, alloc = #cim_tile.alloc<segment = 0, copies = 2, chunks = 1>, align = 64 : i64, mode = #cim_tile.mode<compute>}> : (tensor<4x512xf32>) -> tensor<4x256xf32>
    func.return
    // CHECK-NEXT: func.return
  }
  // CHECK-NEXT: }
}
// CHECK-NEXT: }
// GENERIC: }) {test.tiling = #cim_tile.tiling<k = 576, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 5, col_tiles = 2, groups_per_array = 1>, test.alloc = #cim_tile.alloc<segment = 2, copies = 4, chunks = 1>, test.mode = #cim_tile.mode<memory>, test.layout = #cim_tile<layout kn>, test.role = #cim_tile<role weights>} : () -> ()
