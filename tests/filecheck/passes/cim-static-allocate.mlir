// RUN: cim-opt %s --split-input-file -p 'convert-graph-to-tile{target=tiny},cim-static-allocate{target=tiny}' | filecheck %s

// cim-static-allocate on `tiny` (8 arrays of 32 x 32, 8 outputs per array):
// operators are packed into segments in program order while their weights fit
// the 8 arrays together; vector work takes the segment that is current when it
// runs; a weight larger than the chip streams in chunks in a segment of its
// own.

// 5 arrays (k = 32: 1 row tile, n = 40: 5 column tiles) fill segment 0; the
// next layer needs ceil(40/32) = 2 x ceil(24/8) = 3 = 6 arrays, 5 + 6 > 8, so
// it opens segment 1; the last layer (1 array) still fits there (6 + 1 <= 8).
builtin.module {
  func.func @two_segments(%x: tensor<1x32xf32>) -> tensor<1x8xf32> {
    %w1 = cim_graph.weight "l1.w" : tensor<32x40xf32>
    %y1 = cim_graph.linear %x, %w1 : (tensor<1x32xf32>, tensor<32x40xf32>) -> tensor<1x40xf32>
    %r1 = cim_graph.unary relu %y1 : tensor<1x40xf32> -> tensor<1x40xf32>
    %w2 = cim_graph.weight "l2.w" : tensor<40x24xf32>
    %y2 = cim_graph.linear %r1, %w2 : (tensor<1x40xf32>, tensor<40x24xf32>) -> tensor<1x24xf32>
    %r2 = cim_graph.unary relu %y2 : tensor<1x24xf32> -> tensor<1x24xf32>
    %w3 = cim_graph.weight "l3.w" : tensor<24x8xf32>
    %y3 = cim_graph.linear %r2, %w3 : (tensor<1x24xf32>, tensor<24x8xf32>) -> tensor<1x8xf32>
    func.return %y3 : tensor<1x8xf32>
  }
}

// CHECK:       builtin.module attributes {cim_tile.target = {spec = "tiny", name = "tiny", hash = "sha256:{{[0-9a-f]+}}"}, cim_tile.strategy = "static"}
// CHECK-LABEL: func.func @two_segments
// CHECK:         cim_tile.mvm %x weight "l1.w" {{.*}} row_tiles = 1, col_tiles = 5, {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         cim_tile.vector segment 0{{ ?}}(
// CHECK:         cim_tile.mvm %{{.*}} weight "l2.w" {{.*}} row_tiles = 2, col_tiles = 3, {{.*}} alloc <segment = 1, copies = 1, chunks = 1>
// CHECK:         cim_tile.vector segment 1{{ ?}}(
// CHECK:         cim_tile.mvm %{{.*}} weight "l3.w" {{.*}} row_tiles = 1, col_tiles = 1, {{.*}} alloc <segment = 1, copies = 1, chunks = 1>

// -----

// Exactly full is still one segment: 4 + 4 = 8 arrays; the third layer (1
// array) no longer fits and starts segment 1.
builtin.module {
  func.func @exactly_full(%x: tensor<1x32xf32>) -> tensor<1x8xf32> {
    %w1 = cim_graph.weight "a.w" : tensor<32x32xf32>
    %y1 = cim_graph.linear %x, %w1 : (tensor<1x32xf32>, tensor<32x32xf32>) -> tensor<1x32xf32>
    %w2 = cim_graph.weight "b.w" : tensor<32x32xf32>
    %y2 = cim_graph.linear %y1, %w2 : (tensor<1x32xf32>, tensor<32x32xf32>) -> tensor<1x32xf32>
    %w3 = cim_graph.weight "c.w" : tensor<32x8xf32>
    %y3 = cim_graph.linear %y2, %w3 : (tensor<1x32xf32>, tensor<32x8xf32>) -> tensor<1x8xf32>
    func.return %y3 : tensor<1x8xf32>
  }
}

// CHECK-LABEL: func.func @exactly_full
// CHECK:         weight "a.w" {{.*}} col_tiles = 4, {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         weight "b.w" {{.*}} col_tiles = 4, {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         weight "c.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1>

// -----

// A layer larger than the chip: 256 x 256 needs ceil(256/32) = 8 row tiles x
// ceil(256/8) = 32 column tiles = 256 arrays, 32 times the chip, so it
// streams in 32 chunks. It never shares a segment: the small layer before it
// keeps segment 0, it gets segment 1, the layer after it (8 arrays) segment 2.
// The vector op right after the chunked layer runs in its segment.
builtin.module {
  func.func @chunked(%x: tensor<1x32xf32>, %h: tensor<1x256xf32>) -> (tensor<1x8xf32>, tensor<1x8xf32>) {
    %w0 = cim_graph.weight "small.w" : tensor<32x8xf32>
    %y0 = cim_graph.linear %x, %w0 : (tensor<1x32xf32>, tensor<32x8xf32>) -> tensor<1x8xf32>
    %w1 = cim_graph.weight "big.w" : tensor<256x256xf32>
    %y1 = cim_graph.linear %h, %w1 : (tensor<1x256xf32>, tensor<256x256xf32>) -> tensor<1x256xf32>
    %r1 = cim_graph.unary relu %y1 : tensor<1x256xf32> -> tensor<1x256xf32>
    %w2 = cim_graph.weight "after.w" : tensor<256x8xf32>
    %y2 = cim_graph.linear %r1, %w2 : (tensor<1x256xf32>, tensor<256x8xf32>) -> tensor<1x8xf32>
    func.return %y0, %y2 : tensor<1x8xf32>, tensor<1x8xf32>
  }
}

// CHECK-LABEL: func.func @chunked
// CHECK:         weight "small.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         weight "big.w" {{.*}} tiling <k = 256, n = 256, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 8, col_tiles = 32, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 32>
// CHECK:         cim_tile.vector segment 1{{ ?}}(
// CHECK:         weight "after.w" {{.*}} row_tiles = 8, col_tiles = 1, {{.*}} alloc <segment = 2, copies = 1, chunks = 1>

// -----

// Two chunked layers in a row each get a segment; the first one starts at
// segment 0 (nothing before it).
builtin.module {
  func.func @two_chunked(%h: tensor<1x256xf32>) -> tensor<1x256xf32> {
    %w1 = cim_graph.weight "c1.w" : tensor<256x256xf32>
    %y1 = cim_graph.linear %h, %w1 : (tensor<1x256xf32>, tensor<256x256xf32>) -> tensor<1x256xf32>
    %w2 = cim_graph.weight "c2.w" : tensor<256x256xf32>
    %y2 = cim_graph.linear %y1, %w2 : (tensor<1x256xf32>, tensor<256x256xf32>) -> tensor<1x256xf32>
    func.return %y2 : tensor<1x256xf32>
  }
}

// CHECK-LABEL: func.func @two_chunked
// CHECK:         weight "c1.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 32>
// CHECK:         weight "c2.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 32>

// -----

// Convolutions are allocated like any MVM; a depthwise conv with 8 groups
// packed 3 per array needs ceil(8/3) = 3 arrays, the pointwise conv after it
// ceil(16/8) = 2: 5 <= 8, one segment.
builtin.module {
  func.func @convs(%x: tensor<1x8x6x6xf32>) -> tensor<1x16x6x6xf32> {
    %w = cim_graph.weight "dw.w" : tensor<8x1x3x3xf32>
    %d = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 8 : (tensor<1x8x6x6xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x6x6xf32>
    %pw = cim_graph.weight "pw.w" : tensor<16x8x1x1xf32>
    %p = cim_graph.conv %d, %pw strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] groups 1 : (tensor<1x8x6x6xf32>, tensor<16x8x1x1xf32>) -> tensor<1x16x6x6xf32>
    func.return %p : tensor<1x16x6x6xf32>
  }
}

// CHECK-LABEL: func.func @convs
// CHECK:         weight "dw.w" {{.*}} groups_per_array = 3> alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         weight "pw.w" {{.*}} col_tiles = 2, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1>
