// RUN: cim-opt %s --split-input-file -p 'convert-graph-to-tile{target=tiny}' | filecheck %s

// convert-graph-to-tile on the `tiny` target: arrays of 32 x 32 cells, 2-bit
// cells and 8-bit weights, so bit_slices = 4 and one array holds 32 / 4 = 8
// outputs. row_tiles = ceil(k / 32), col_tiles = ceil(n / 8).

// Convolution with bias: k = 3*3*3 = 27 (one row tile), n = 16 outputs
// (16 / 8 = 2 column tiles). im2col unrolls [1,3,8,8] into 64 vectors of 27,
// col2im folds [64, 16] back into NCHW; the bias is named on the MVM.
builtin.module {
  func.func @conv_bias(%x: tensor<1x3x8x8xf32>) -> tensor<1x16x8x8xf32> {
    %w = cim_graph.weight "conv.w" : tensor<16x3x3x3xf32>
    %b = cim_graph.weight "conv.b" : tensor<16xf32>
    %y = cim_graph.conv %x, %w, %b strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<16x3x3x3xf32>, tensor<16xf32>) -> tensor<1x16x8x8xf32>
    func.return %y : tensor<1x16x8x8xf32>
  }
}

// CHECK-LABEL: func.func @conv_bias
// CHECK-NOT:     cim_graph.conv
// CHECK:         %[[COLS:[^ ]+]] = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x3x8x8xf32> -> tensor<64x27xf32>
// CHECK-NEXT:    %[[MVM:[^ ]+]] = cim_tile.mvm %[[COLS]] weight "conv.w" layout oihw bias "conv.b"
// CHECK-SAME:      tiling <k = 27, n = 16, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 2, groups_per_array = 1>
// CHECK-SAME:      mode <compute> : tensor<64x27xf32> -> tensor<64x16xf32>
// CHECK-NEXT:    %[[IMG:[^ ]+]] = cim_tile.col2im %[[MVM]] : tensor<64x16xf32> -> tensor<1x16x8x8xf32>
// CHECK-NEXT:    func.return %[[IMG]]

// -----

// K not a multiple of the array rows: k = 8*3*3 = 72 needs ceil(72 / 32) = 3
// row tiles (the last one uses 8 rows); n = 8 fills exactly one column tile.
// Stride 2 and no padding: 3x3 outputs, so 9 vectors.
builtin.module {
  func.func @conv_ceil(%x: tensor<1x8x7x7xf32>) -> tensor<1x8x3x3xf32> {
    %w = cim_graph.weight "c.w" : tensor<8x8x3x3xf32>
    %y = cim_graph.conv %x, %w strides [2, 2] pads [0, 0, 0, 0] dilations [1, 1] groups 1 : (tensor<1x8x7x7xf32>, tensor<8x8x3x3xf32>) -> tensor<1x8x3x3xf32>
    func.return %y : tensor<1x8x3x3xf32>
  }
}

// CHECK-LABEL: func.func @conv_ceil
// CHECK:         cim_tile.im2col %x kernel [3, 3] strides [2, 2] pads [0, 0, 0, 0] dilations [1, 1] groups 1 : tensor<1x8x7x7xf32> -> tensor<9x72xf32>
// CHECK-NEXT:    cim_tile.mvm %{{.*}} weight "c.w" layout oihw tiling <k = 72, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 3, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<9x72xf32> -> tensor<9x8xf32>

// -----

// Depthwise convolution: 8 groups of k = 1*3*3 = 9, n = 1. One array takes
// min(groups = 8, rows / k = 32 / 9 = 3, outputs / n = 8 / 1 = 8) = 3 groups
// along its diagonal: groups_per_array = 3, one tile per packed block.
builtin.module {
  func.func @depthwise(%x: tensor<1x8x6x6xf32>) -> tensor<1x8x6x6xf32> {
    %w = cim_graph.weight "dw.w" : tensor<8x1x3x3xf32>
    %y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 8 : (tensor<1x8x6x6xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x6x6xf32>
    func.return %y : tensor<1x8x6x6xf32>
  }
}

// CHECK-LABEL: func.func @depthwise
// CHECK:         cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 8 : tensor<1x8x6x6xf32> -> tensor<36x72xf32>
// CHECK-NEXT:    cim_tile.mvm %{{.*}} weight "dw.w" layout oihw tiling <k = 9, n = 1, groups = 8, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 3> mode <compute> : tensor<36x72xf32> -> tensor<36x8xf32>

// -----

// Grouped convolution whose groups do not pack: k = 40 > 32 rows, so each of
// the 2 groups gets its own ceil(40 / 32) = 2 x ceil(16 / 8) = 2 tiles.
builtin.module {
  func.func @grouped(%x: tensor<1x80x1x1xf32>) -> tensor<1x32x1x1xf32> {
    %w = cim_graph.weight "g.w" : tensor<32x40x1x1xf32>
    %y = cim_graph.conv %x, %w strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] groups 2 : (tensor<1x80x1x1xf32>, tensor<32x40x1x1xf32>) -> tensor<1x32x1x1xf32>
    func.return %y : tensor<1x32x1x1xf32>
  }
}

// CHECK-LABEL: func.func @grouped
// CHECK:         cim_tile.mvm %{{.*}} weight "g.w" layout oihw tiling <k = 40, n = 16, groups = 2, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1> mode <compute> : tensor<1x80xf32> -> tensor<1x32xf32>

// -----

// Linear with a transposed weight (Gemm transB): W is [N = 10, K = 40], so
// layout nk, k = 40 -> ceil(40 / 32) = 2 row tiles, n = 10 -> ceil(10 / 8) = 2
// column tiles. A 2-D input maps straight onto the MVM.
builtin.module {
  func.func @linear_t(%x: tensor<2x40xf32>) -> tensor<2x10xf32> {
    %w = cim_graph.weight "fc.w" : tensor<10x40xf32>
    %b = cim_graph.weight "fc.b" : tensor<10xf32>
    %y = cim_graph.linear %x, %w, %b transpose_weight : (tensor<2x40xf32>, tensor<10x40xf32>, tensor<10xf32>) -> tensor<2x10xf32>
    func.return %y : tensor<2x10xf32>
  }
}

// CHECK-LABEL: func.func @linear_t
// CHECK-NEXT:    %[[Y:[^ ]+]] = cim_tile.mvm %x weight "fc.w" layout nk bias "fc.b" tiling <k = 40, n = 10, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1> mode <compute> : tensor<2x40xf32> -> tensor<2x10xf32>
// CHECK-NEXT:    func.return %[[Y]]

// -----

// Linear with a [K, N] weight on a 3-D input: the input is flattened to
// [1*4, 32] vectors and the result reshaped back, both on the vector units.
// k = 32 is exactly one row tile; n = 24 -> 3 column tiles.
builtin.module {
  func.func @linear_3d(%x: tensor<1x4x32xf32>) -> tensor<1x4x24xf32> {
    %w = cim_graph.weight "p.w" : tensor<32x24xf32>
    %y = cim_graph.linear %x, %w : (tensor<1x4x32xf32>, tensor<32x24xf32>) -> tensor<1x4x24xf32>
    func.return %y : tensor<1x4x24xf32>
  }
}

// CHECK-LABEL: func.func @linear_3d
// CHECK-NEXT:    %[[FLAT:[^ ]+]] = cim_tile.vector{{ ?}}(%x) : (tensor<1x4x32xf32>) -> tensor<4x32xf32> {
// CHECK:           cim_graph.reshape %{{.*}} : tensor<1x4x32xf32> -> tensor<4x32xf32>
// CHECK:         %[[MVM:[^ ]+]] = cim_tile.mvm %[[FLAT]] weight "p.w" layout kn tiling <k = 32, n = 24, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 3, groups_per_array = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x24xf32>
// CHECK-NEXT:    %{{.*}} = cim_tile.vector{{ ?}}(%[[MVM]]) : (tensor<4x24xf32>) -> tensor<1x4x24xf32> {
// CHECK:           cim_graph.reshape %{{.*}} : tensor<4x24xf32> -> tensor<1x4x24xf32>

// -----

// Everything that is not weight-stationary is wrapped in cim_tile.vector,
// weights it reads (the layer-norm scale and bias) included as operands; the
// weight ops themselves stay outside.
builtin.module {
  func.func @vector_work(%x: tensor<1x4x32xf32>) -> tensor<1x4x32xf32> {
    %g = cim_graph.weight "ln.g" : tensor<32xf32>
    %b = cim_graph.weight "ln.b" : tensor<32xf32>
    %y = cim_graph.layer_norm %x, %g, %b axis -1 epsilon 1.0e-05 : (tensor<1x4x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32>
    %z = cim_graph.unary relu %y : tensor<1x4x32xf32> -> tensor<1x4x32xf32>
    func.return %z : tensor<1x4x32xf32>
  }
}

// CHECK-LABEL: func.func @vector_work
// CHECK-NEXT:    %g = cim_graph.weight "ln.g" : tensor<32xf32>
// CHECK-NEXT:    %b = cim_graph.weight "ln.b" : tensor<32xf32>
// CHECK-NEXT:    %[[LN:[^ ]+]] = cim_tile.vector{{ ?}}(%x, %g, %b) : (tensor<1x4x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32> {
// CHECK-NEXT:    ^{{.*}}(%[[A:.*]]: tensor<1x4x32xf32>, %[[S:.*]]: tensor<32xf32>, %[[B:.*]]: tensor<32xf32>):
// CHECK-NEXT:      %[[R:[^ ]+]] = cim_graph.layer_norm %[[A]], %[[S]], %[[B]] axis -1
// CHECK-NEXT:      cim_tile.yield %[[R]] : tensor<1x4x32xf32>
// CHECK-NEXT:    }
// CHECK-NEXT:    %{{.*}} = cim_tile.vector{{ ?}}(%[[LN]]) : (tensor<1x4x32xf32>) -> tensor<1x4x32xf32> {
// CHECK:           cim_graph.unary relu
