// RUN: cim-opt %s --split-input-file -p 'cim-clsa-allocate{target=tiny}' | filecheck %s
// RUN: cim-opt %s --split-input-file -p 'cim-clsa-allocate{target=tiny blocks=4}' | filecheck %s --check-prefix=FOUR

// cim-clsa-allocate on `tiny` (2 cores x 4 arrays; an MVM takes 10 cycles for
// one vector and 8 more for each further vector): cross-layer scheduling as
// a `rows` dataflow (a layer starts on the rows of its input already
// computed), and duplication of the layers with the most MVM cycles in the
// arrays left after one copy of each.

// Two convolutions: conv1 (2 arrays) makes 8 output rows of 8 pixels, conv2
// (3 arrays, stride 2) 4 rows of 4. By default a band is one output row of
// the operator with the most rows: 8 blocks (conv2 runs in its 4 rows). One
// copy each takes 5 arrays; conv1 (8 steps of 8 vectors, 528 cycles) is the
// slowest and takes a second copy (7 arrays); its third copy (2 arrays) and
// a second copy of conv2 (3 arrays) do not fit.
builtin.module {
  func.func @cnn(%x: tensor<1x4x8x8xf32>) -> tensor<1x8x4x4xf32> {
    %c1 = cim_tile.im2col %x kernel [3, 3] strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x4x8x8xf32> -> tensor<64x36xf32>
    %m1 = cim_tile.mvm %c1 weight "conv1.w" layout oihw tiling <k = 36, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x36xf32> -> tensor<64x8xf32>
    %y1 = cim_tile.col2im %m1 : tensor<64x8xf32> -> tensor<1x8x8x8xf32>
    %c2 = cim_tile.im2col %y1 kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : tensor<1x8x8x8xf32> -> tensor<16x72xf32>
    %m2 = cim_tile.mvm %c2 weight "conv2.w" layout oihw tiling <k = 72, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 3, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<16x72xf32> -> tensor<16x8xf32>
    %y2 = cim_tile.col2im %m2 : tensor<16x8xf32> -> tensor<1x8x4x4xf32>
    func.return %y2 : tensor<1x8x4x4xf32>
  }
}

// CHECK:       builtin.module attributes {cim_tile.strategy = "clsa-cim"}
// CHECK-LABEL: func.func @cnn
// CHECK-NEXT:    cim_tile.dataflow segment 0 rows blocks 8
// CHECK:         weight "conv1.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> mode
// CHECK:         weight "conv2.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// FOUR-LABEL:  func.func @cnn
// FOUR-NEXT:     cim_tile.dataflow segment 0 rows blocks 4
// FOUR:          weight "conv1.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> mode
// FOUR:          weight "conv2.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// -----

// Two 1-array layers: a (64 sequence positions) and b (16 vectors of a 2-D
// input, cut into bands of vectors). With 4 blocks both run in 4 steps (of
// 16 and 4 vectors), each step split between the copies (tiny's MVMs are
// compute-bound: `splits_bands`), and a copy counts the cycles its weight
// takes to stream in (18 for the second, 16 more for each further one). a
// is the slowest until it has 4 copies (136 + 50 cycles; a sixth would tie,
// 104 + 82); b then gets 2 (72 + 18; a fourth would tie, 40 + 50): 6 of the
// 8 arrays compute. By default a band is one row, but at most 32 bands: a
// runs in 32 bands of 2 rows, b in 16 of one vector. a is the slowest until
// it has 6 copies (110 + 82; more would not be faster), then b gets 2
// (80 + 18); b's third copy (60 + 34) does not fit.
builtin.module {
  func.func @fill(%s: tensor<1x64x32xf32>, %h: tensor<16x32xf32>) -> (tensor<64x8xf32>, tensor<16x8xf32>) {
    %r = cim_tile.vector (%s) : (tensor<1x64x32xf32>) -> tensor<1x64x32xf32> {
    ^bb0(%v: tensor<1x64x32xf32>):
      %u = cim_graph.unary relu %v : tensor<1x64x32xf32> -> tensor<1x64x32xf32>
      cim_tile.yield %u : tensor<1x64x32xf32>
    }
    %x = cim_tile.vector (%r) : (tensor<1x64x32xf32>) -> tensor<64x32xf32> {
    ^bb0(%v: tensor<1x64x32xf32>):
      %u = cim_graph.reshape %v : tensor<1x64x32xf32> -> tensor<64x32xf32>
      cim_tile.yield %u : tensor<64x32xf32>
    }
    %a = cim_tile.mvm %x weight "a.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x32xf32> -> tensor<64x8xf32>
    %b = cim_tile.mvm %h weight "b.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<16x32xf32> -> tensor<16x8xf32>
    func.return %a, %b : tensor<64x8xf32>, tensor<16x8xf32>
  }
}

// CHECK-LABEL: func.func @fill
// CHECK-NEXT:    cim_tile.dataflow segment 0 rows blocks 32
// CHECK:         weight "a.w" {{.*}} alloc <segment = 0, copies = 6, chunks = 1> mode
// CHECK:         weight "b.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> mode

// FOUR-LABEL:  func.func @fill
// FOUR-NEXT:     cim_tile.dataflow segment 0 rows blocks 4
// FOUR:          weight "a.w" {{.*}} alloc <segment = 0, copies = 4, chunks = 1> mode
// FOUR:          weight "b.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> mode
