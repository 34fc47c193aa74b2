// RUN: cim-opt %s --split-input-file -p 'convert-graph-to-tile{target=tiny},cim-cmswitch{target=tiny}' | filecheck %s
// RUN: cim-opt %s --split-input-file -p 'convert-graph-to-tile{target=tiny},cim-cmswitch{target=tiny check_segments=false}' | filecheck %s --check-prefix=DP

// cim-cmswitch on `tiny` (8 arrays of 32 x 32, 8 outputs per array): the
// DP's segments (cim-segment) and the static baseline's packing (operators
// in program order while their weights fit the chip together), each
// allocated by cim-allocate with its checks; where the boundaries differ,
// the packing's allocation is kept only when cim-sim finds its run strictly
// faster, and a remark gives both cycle counts. The second RUN turns the
// check off: the DP's segments as allocated.

// l0 (8 x 64: 8 column tiles) takes all 8 arrays, so the packing is {l0},
// {l1, l2}: l1 (64 x 8: 2 row tiles) with 2 copies and l2 (8 x 8) with 4
// share the chip. The DP's model gives l1 and l2 a segment each, with 4 and
// 8 copies (16 and 8 of the 64 vectors per copy instead of 32 and 16),
// pricing the third segment's entry (l2's weights loaded and programmed)
// below what the copies save; the simulator finds the packing faster.
builtin.module {
  func.func @packing_kept(%x: tensor<64x8xf32>) -> tensor<64x8xf32> {
    %w0 = cim_graph.weight "l0.w" : tensor<8x64xf32>
    %y0 = cim_graph.linear %x, %w0 : (tensor<64x8xf32>, tensor<8x64xf32>) -> tensor<64x64xf32>
    %w1 = cim_graph.weight "l1.w" : tensor<64x8xf32>
    %y1 = cim_graph.linear %y0, %w1 : (tensor<64x64xf32>, tensor<64x8xf32>) -> tensor<64x8xf32>
    %w2 = cim_graph.weight "l2.w" : tensor<8x8xf32>
    %y2 = cim_graph.linear %y1, %w2 : (tensor<64x8xf32>, tensor<8x8xf32>) -> tensor<64x8xf32>
    func.return %y2 : tensor<64x8xf32>
  }
}

// CHECK:       cim_tile.remark = "the static packing's 2 segments simulate to 1496 cycles, the DP's 3 to 1584: kept the static packing"
// CHECK-LABEL: func.func @packing_kept
// CHECK:         weight "l0.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         weight "l1.w" {{.*}} alloc <segment = 1, copies = 2, chunks = 1>
// CHECK:         weight "l2.w" {{.*}} alloc <segment = 1, copies = 4, chunks = 1>

// DP-NOT:      cim_tile.remark
// DP-LABEL:    func.func @packing_kept
// DP:            weight "l0.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// DP:            weight "l1.w" {{.*}} alloc <segment = 1, copies = 4, chunks = 1>
// DP:            weight "l2.w" {{.*}} alloc <segment = 2, copies = 8, chunks = 1>

// -----

// cim-segment.mlir's first case: the DP cuts before l2, giving l1 the
// chip, where the packing puts l1 and l2 together; with the next
// segment's weights staged beside l1, the DP's segments simulate faster,
// so the module is the one the check-free RUN makes.
builtin.module {
  func.func @regroup(%x: tensor<256x32xf32>, %h: tensor<1x32xf32>) -> (tensor<256x8xf32>, tensor<1x32xf32>) {
    %w1 = cim_graph.weight "l1.w" : tensor<32x8xf32>
    %y1 = cim_graph.linear %x, %w1 : (tensor<256x32xf32>, tensor<32x8xf32>) -> tensor<256x8xf32>
    %w2 = cim_graph.weight "l2.w" : tensor<32x32xf32>
    %y2 = cim_graph.linear %h, %w2 : (tensor<1x32xf32>, tensor<32x32xf32>) -> tensor<1x32xf32>
    %w3 = cim_graph.weight "l3.w" : tensor<32x32xf32>
    %y3 = cim_graph.linear %y2, %w3 : (tensor<1x32xf32>, tensor<32x32xf32>) -> tensor<1x32xf32>
    func.return %y1, %y3 : tensor<256x8xf32>, tensor<1x32xf32>
  }
}

// CHECK-NOT:   cim_tile.remark
// CHECK-LABEL: func.func @regroup
// CHECK:         cim_tile.memory_buffer weights arrays 4 bytes 1024 segment 0
// CHECK:         weight "l1.w" {{.*}} alloc <segment = 0, copies = 4, chunks = 1>
// CHECK:         weight "l2.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1>
// CHECK:         weight "l3.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1>

// DP-NOT:      cim_tile.remark
// DP-LABEL:    func.func @regroup
// DP:            cim_tile.memory_buffer weights arrays 4 bytes 1024 segment 0
// DP:            weight "l1.w" {{.*}} alloc <segment = 0, copies = 4, chunks = 1>
// DP:            weight "l2.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1>
