// RUN: xdsl-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

// Every verifier error of cim_tile's attributes and ops, one case per split
// chunk, each checked for its exact message, in order. A few cases check
// parse errors (--parsing-diagnostics).

// CHECK: #cim_tile.tiling fields must be positive
"test.op"() {t = #cim_tile.tiling<k = 0, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: 8 bit slices do not fit 4 columns
"test.op"() {t = #cim_tile.tiling<k = 16, n = 1, groups = 1, rows = 128, cols = 4, bit_slices = 8, row_tiles = 1, col_tiles = 1, groups_per_array = 1>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: k = 144, n = 32 on 128x128 arrays with 4 bit slices needs 2 row tiles and 1 column tiles
"test.op"() {t = #cim_tile.tiling<k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: k = 144, n = 64 on 128x128 arrays with 4 bit slices needs 2 row tiles and 2 column tiles
"test.op"() {t = #cim_tile.tiling<k = 144, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: 20 groups of 9x1 do not fit one 128x128 array with 4 bit slices
"test.op"() {t = #cim_tile.tiling<k = 9, n = 1, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 20>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: 15 groups of 9x1 do not fit one 128x128 array with 4 bit slices
"test.op"() {t = #cim_tile.tiling<k = 9, n = 1, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 15>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: 8 groups of 9x8 do not fit one 128x128 array with 4 bit slices
"test.op"() {t = #cim_tile.tiling<k = 9, n = 8, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 8>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: packed groups need row_tiles = col_tiles = 1
"test.op"() {t = #cim_tile.tiling<k = 9, n = 1, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 14>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: column_row_tiles needs one group, got 2
"test.op"() {t = #cim_tile.tiling<k = 140, n = 64, groups = 2, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [2, 1]>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: column_row_tiles has 3 entries for 2 column tiles
"test.op"() {t = #cim_tile.tiling<k = 140, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [2, 1, 1]>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: column_row_tiles must lie in [1, 2], reach row_tiles = 2 and differ, got [2, 2]
"test.op"() {t = #cim_tile.tiling<k = 140, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [2, 2]>} : () -> ()

// -----

// CHECK: #cim_tile.tiling: column_row_tiles must lie in [1, 2], reach row_tiles = 2 and differ, got [1, 0]
"test.op"() {t = #cim_tile.tiling<k = 140, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [1, 0]>} : () -> ()

// -----

// CHECK: Expected 'n'
"test.op"() {t = #cim_tile.tiling<k = 9, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1>} : () -> ()

// -----

// CHECK: #cim_tile.alloc segment must not be negative
"test.op"() {a = #cim_tile.alloc<segment = -1, copies = 1, chunks = 1>} : () -> ()

// -----

// CHECK: #cim_tile.alloc copies and chunks must be positive
"test.op"() {a = #cim_tile.alloc<segment = 0, copies = 0, chunks = 1>} : () -> ()

// -----

// CHECK: #cim_tile.alloc copies and chunks must be positive
"test.op"() {a = #cim_tile.alloc<segment = 0, copies = 1, chunks = 0>} : () -> ()

// -----

// CHECK: #cim_tile.alloc: a weight streamed in chunks cannot also be duplicated
"test.op"() {a = #cim_tile.alloc<segment = 0, copies = 2, chunks = 2>} : () -> ()

// -----

// CHECK: Expected `compute`, or `memory`.
"test.op"() {m = #cim_tile.mode<storage>} : () -> ()

// -----

// CHECK: Expected `kn`, `nk`, or `oihw`.
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout hwio tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' intra_block needs compacted_from (the weight's rows before the mapping)
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> intra_block 4 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' intra_block must be a power of two from 2, got 3
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 intra_block 3 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' driven_rows needs intra_block (only an IntraBlock mapping drives other rows than it holds)
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 driven_rows 96 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' driven_rows (200) must lie between the 72 rows held and the 144 of the weight
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 intra_block 4 driven_rows 200 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' input_rows needs compacted_from (only compacted rows gather their inputs)
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> input_rows 144 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' input_rows (64) must lie between the 72 rows held and the 144 of the weight
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 input_rows 64 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' index_block needs compacted_from without intra_block (only a row gather lists its held rows)
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 36, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 intra_block 4 index_block 9 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' index_block (144) must lie between 2 and the 144 rows of the weight
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 72, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 index_block 144 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' columns_from (16) must exceed the 16 columns its tiling holds
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> columns_from 16 mode <compute> : tensor<64x144xf32> -> tensor<64x16xf32>

// -----

// CHECK: 'cim_tile.mvm' compacts either its rows (compacted_from) or its columns (columns_from), not both
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 72, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> compacted_from 144 columns_from 32 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' misaligned_columns needs columns_from
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> misaligned_columns mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' maps [64 x 144] to [64 x 16] but its tiling is 1 groups of 144 x 32
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 16, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> columns_from 32 mode <compute> : tensor<64x144xf32> -> tensor<64x16xf32>

// -----

// CHECK: 'cim_tile.mvm' runs on arrays in compute mode
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <memory> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' works on 2-D [vectors x features] tensors
%x = "test.op"() : () -> tensor<1x64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<1x64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' maps [64 x 100] to [64 x 32] but its tiling is 1 groups of 144 x 32
%x = "test.op"() : () -> tensor<64x100xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x100xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' misaligned_columns needs columns_from
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> misaligned_columns mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.mvm' maps [64 x 144] to [64 x 16] but its tiling is 1 groups of 144 x 32
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x144xf32> -> tensor<64x16xf32>

// -----

// CHECK: 'cim_tile.mvm' maps [64 x 144] to [32 x 32] but its tiling is 1 groups of 144 x 32
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x144xf32> -> tensor<32x32xf32>

// -----

// CHECK: 'cim_tile.mvm' maps [16 x 144] to [16 x 1] but its tiling is 16 groups of 9 x 1
%x = "test.op"() : () -> tensor<16x144xf32>
%y = cim_tile.mvm %x weight "dw" layout oihw tiling <k = 9, n = 1, groups = 16, rows = 128, cols = 128, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 14> mode <compute> : tensor<16x144xf32> -> tensor<16x1xf32>

// -----

// CHECK: 'cim_tile.mvm' needs a weight name
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: #cim_tile.alloc: a weight streamed in chunks cannot also be duplicated
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout oihw tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 4, chunks = 2> mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.im2col' unrolls 2-D NCHW windows
%x = "test.op"() : () -> tensor<16x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<16x8x8xf32> -> tensor<64x144xf32>

// -----

// CHECK: 'cim_tile.im2col' unrolls 2-D NCHW windows
%x = "test.op"() : () -> tensor<1x16x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x16x8x8xf32> -> tensor<64x432xf32>

// -----

// CHECK: 'cim_tile.im2col' 16 channels do not split into 3 groups
%x = "test.op"() : () -> tensor<1x16x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 3 : tensor<1x16x8x8xf32> -> tensor<64x144xf32>

// -----

// CHECK: 'cim_tile.im2col' 16 channels do not split into 0 groups
%x = "test.op"() : () -> tensor<1x16x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 0 : tensor<1x16x8x8xf32> -> tensor<64x144xf32>

// -----

// CHECK: 'cim_tile.im2col' result must be [64, 144], got [64, 128]
%x = "test.op"() : () -> tensor<1x16x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x16x8x8xf32> -> tensor<64x128xf32>

// -----

// CHECK: 'cim_tile.im2col' result must be [16, 144], got [64, 144]
%x = "test.op"() : () -> tensor<1x16x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x16x8x8xf32> -> tensor<64x144xf32>

// -----

// CHECK: 'cim_tile.col2im' works on 2-D [vectors x features] tensors
%m = "test.op"() : () -> tensor<1x64x32xf32>
%y = cim_tile.col2im %m : tensor<1x64x32xf32> -> tensor<1x32x8x8xf32>

// -----

// CHECK: 'cim_tile.col2im' cannot fold [64 x 32] into [1, 32, 4, 4]
%m = "test.op"() : () -> tensor<64x32xf32>
%y = cim_tile.col2im %m : tensor<64x32xf32> -> tensor<1x32x4x4xf32>

// -----

// CHECK: 'cim_tile.col2im' cannot fold [64 x 32] into [1, 16, 8, 8]
%m = "test.op"() : () -> tensor<64x32xf32>
%y = cim_tile.col2im %m : tensor<64x32xf32> -> tensor<1x16x8x8xf32>

// -----

// CHECK: 'cim_tile.col2im' cannot fold [64 x 32] into [32, 64]
%m = "test.op"() : () -> tensor<64x32xf32>
%y = cim_tile.col2im %m : tensor<64x32xf32> -> tensor<32x64xf32>

// -----

// CHECK: 'cim_tile.yield' expects parent op 'cim_tile.vector'
%x = "test.op"() : () -> tensor<4xf32>
cim_tile.yield %x : tensor<4xf32>

// -----

// CHECK: 'cim_graph.conv' is weight-stationary: it maps to cim_tile.mvm
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_tile.vector (%x) : (tensor<1x3x8x8xf32>) -> tensor<1x4x8x8xf32> {
^bb0(%a: tensor<1x3x8x8xf32>):
  %r = cim_graph.conv %a, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
  cim_tile.yield %r : tensor<1x4x8x8xf32>
}

// -----

// CHECK: 'cim_graph.linear' is weight-stationary: it maps to cim_tile.mvm
%x = "test.op"() : () -> tensor<4x16xf32>
%w = cim_graph.weight "w" : tensor<16x8xf32>
%y = cim_tile.vector (%x) : (tensor<4x16xf32>) -> tensor<4x8xf32> {
^bb0(%a: tensor<4x16xf32>):
  %r = cim_graph.linear %a, %w : (tensor<4x16xf32>, tensor<16x8xf32>) -> tensor<4x8xf32>
  cim_tile.yield %r : tensor<4x8xf32>
}

// -----

// CHECK: 'cim_tile.vector' body must hold one cim_graph op and cim_tile.yield
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  %r = cim_graph.unary relu %a : tensor<4xf32> -> tensor<4xf32>
  %s = cim_graph.unary exp %r : tensor<4xf32> -> tensor<4xf32>
  cim_tile.yield %s : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.vector' body must hold one cim_graph op and cim_tile.yield
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  cim_tile.yield %a : tensor<4xf32>
}

// -----

// CHECK: Operation cim_graph.unary terminates block in single-block region but is not a terminator
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  %r = cim_graph.unary relu %a : tensor<4xf32> -> tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.vector' body must apply a cim_graph operator, got 'arith.addf'
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  %r = arith.addf %a, %a : tensor<4xf32>
  cim_tile.yield %r : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.vector' body must apply a cim_graph operator, got 'cim_graph.weight'
%y = cim_tile.vector () : () -> tensor<4xf32> {
^bb0:
  %w = cim_graph.weight "w" : tensor<4xf32>
  cim_tile.yield %w : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.vector' block arguments must match its operands
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<2x2xf32> {
^bb0(%a: tensor<2x2xf32>):
  %r = cim_graph.unary relu %a : tensor<2x2xf32> -> tensor<2x2xf32>
  cim_tile.yield %r : tensor<2x2xf32>
}

// -----

// CHECK: 'cim_tile.vector' yields types unlike its results
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<2x2xf32> {
^bb0(%a: tensor<4xf32>):
  %r = cim_graph.unary relu %a : tensor<4xf32> -> tensor<4xf32>
  cim_tile.yield %r : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.vector' segment must not be negative
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector segment -1 (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  %r = cim_graph.unary relu %a : tensor<4xf32> -> tensor<4xf32>
  cim_tile.yield %r : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.memory_buffer' arrays are in memory mode
cim_tile.memory_buffer kv_cache arrays 8 bytes 102400 segment 1 holds ["k"] mode <compute>

// -----

// CHECK: 'cim_tile.memory_buffer' needs at least one array and one byte
cim_tile.memory_buffer activations arrays 0 bytes 1024 segment 0 mode <memory>

// -----

// CHECK: 'cim_tile.memory_buffer' needs at least one array and one byte
cim_tile.memory_buffer activations arrays 2 bytes 0 segment 0 mode <memory>

// -----

// CHECK: 'cim_tile.memory_buffer' segment must not be negative
cim_tile.memory_buffer weights arrays 2 bytes 64 segment -2 mode <memory>

// -----

// CHECK: Expected `activations`, `chunks`, `inputs`, `kv_cache`, or `weights`.
cim_tile.memory_buffer scratch arrays 2 bytes 64 segment 0 mode <memory>

// -----

// CHECK: 'cim_tile.im2col' needs 2 strides, 2 dilations and 4 pads
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3] strides [1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x4x8x8xf32> -> tensor<64x36xf32>

// -----

// CHECK: 'cim_tile.im2col' kernel, strides and dilations must be positive, pads non-negative
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%c = cim_tile.im2col %x kernel [3, 3] strides [0, 0] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x4x8x8xf32> -> tensor<64x36xf32>

// -----

// CHECK: 'cim_tile.mvm' bias name must not be empty
%x = "test.op"() : () -> tensor<4x16xf32>
%y = cim_tile.mvm %x weight "w" layout kn bias "" tiling <k = 16, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<4x16xf32> -> tensor<4x8xf32>

// -----

// CHECK: 'cim_tile.vector' payload must only use the body's arguments
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  %r = cim_graph.binary add %a, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  cim_tile.yield %r : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.vector' must yield exactly its payload's results
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  %r = cim_graph.unary relu %a : tensor<4xf32> -> tensor<4xf32>
  cim_tile.yield %a : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.memory_buffer' names the tensors it holds exactly when it is a kv_cache
cim_tile.memory_buffer kv_cache arrays 8 bytes 102400 segment 1 mode <memory>

// -----

// CHECK: 'cim_tile.memory_buffer' names the tensors it holds exactly when it is a kv_cache
cim_tile.memory_buffer activations arrays 8 bytes 1024 segment 1 holds ["x"] mode <memory>

// -----

// CHECK: 'cim_tile.dataflow' needs at least one block
cim_tile.dataflow segment 0 rows blocks 0

// -----

// CHECK: 'cim_tile.dataflow' layer runs in one block
cim_tile.dataflow segment 0 layer blocks 2

// -----

// CHECK: 'cim_tile.dataflow' segment must not be negative
cim_tile.dataflow segment -1 batch blocks 2

// -----

// CHECK: 'cim_tile.mvm' align must be positive
%x = "test.op"() : () -> tensor<64x144xf32>
%y = cim_tile.mvm %x weight "w" layout kn tiling <k = 144, n = 32, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> align 0 mode <compute> : tensor<64x144xf32> -> tensor<64x32xf32>

// -----

// CHECK: 'cim_tile.vector' matmul_arrays applies to a cim_graph.matmul, not 'cim_graph.unary'
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_tile.vector matmul_arrays 2 (%x) : (tensor<4xf32>) -> tensor<4xf32> {
^bb0(%a: tensor<4xf32>):
  %r = cim_graph.unary relu %a : tensor<4xf32> -> tensor<4xf32>
  cim_tile.yield %r : tensor<4xf32>
}

// -----

// CHECK: 'cim_tile.vector' matmul_arrays must not be negative
%x = "test.op"() : () -> tensor<4x4xf32>
%y = cim_tile.vector matmul_arrays -1 (%x, %x) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32> {
^bb0(%a: tensor<4x4xf32>, %b: tensor<4x4xf32>):
  %r = cim_graph.matmul %a, %b : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  cim_tile.yield %r : tensor<4x4xf32>
}

// -----

// CHECK: 'cim_tile.mvm' a tiling with column_row_tiles needs compacted_from (only compacted column tiles hold their own rows)
%x = "test.op"() : () -> tensor<4x140xf32>
%y = cim_tile.mvm %x weight "w" layout kn tiling <k = 140, n = 64, groups = 1, rows = 128, cols = 128, bit_slices = 4, row_tiles = 2, col_tiles = 2, groups_per_array = 1, column_row_tiles = [2, 1]> mode <compute> : tensor<4x140xf32> -> tensor<4x64xf32>
