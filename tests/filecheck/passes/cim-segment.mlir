// RUN: cim-opt %s --split-input-file -p 'convert-graph-to-tile{target=tiny},cim-segment{target=tiny}' | filecheck %s
// RUN: cim-opt %s --split-input-file -p 'convert-graph-to-tile{target=tiny},cim-segment{target=tiny pricing=milp}' | filecheck %s

// Priced by the allocation MILP (pricing=milp), memory mode included, every
// case here keeps the same segments: all compute wins each of them (a case
// where the MILP's pricing moves a boundary and wins is ResNet-18 on
// dynaplasia, tests/pytest/test_segment_pricing.py).

// cim-segment on `tiny` (8 arrays of 32 x 32, 8 outputs per array; one MVM
// takes 10 cycles, 8 more per further vector; DRAM 8 B/cycle after 20
// cycles; a row programs in 1 cycle): dynamic programming over the segment
// boundaries (right before an MVM), each segment priced by the dual-mode
// cost model as its entry (weights loaded from DRAM and programmed) plus its
// body under the greedy all-compute allocation (spare arrays to the copies
// saving the most cycles per array). Vector work stays with the MVM before
// it. The module records the estimate in cim_tile.predicted_cycles.

// The static baseline packs l1 (1 array) and l2 (4 arrays) into segment 0,
// where l1's 256 vectors get at most 4 copies (64 vectors each: 10 + 63 * 8
// = 514 cycles, plus 2 + 3 * 256 / 16 = 50 to stream the 3 extra copies'
// weights over the bus), and l3 into segment 1. Cutting before l2 instead
// gives l1 the whole chip: 8 copies of 32 vectors, 10 + 31 * 8 = 258 cycles
// plus 2 + 7 * 256 / 16 = 114 of streaming. l2 and l3 (one vector each, 4
// arrays each) share segment 1 with one copy (a vector cannot be split).
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

// CHECK:       builtin.module attributes {cim_tile.target = {spec = "tiny", name = "tiny", hash = "sha256:{{[0-9a-f]+}}"}, cim_tile.strategy = "cmswitch", cim_tile.predicted_cycles = 2890 : i64}
// CHECK-LABEL: func.func @regroup
// CHECK:         weight "l1.w" {{.*}} alloc <segment = 0, copies = 8, chunks = 1>
// CHECK:         weight "l2.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1>
// CHECK:         weight "l3.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1>

// -----

// One vector each: copies cannot help, so the two layers share one segment
// (one entry: their programs overlap; 182 cycles against 128 + 62 = 190 for
// two segments). The relu between them joins the segment.
builtin.module {
  func.func @together(%x: tensor<1x32xf32>) -> tensor<1x16xf32> {
    %w1 = cim_graph.weight "a.w" : tensor<32x8xf32>
    %y1 = cim_graph.linear %x, %w1 : (tensor<1x32xf32>, tensor<32x8xf32>) -> tensor<1x8xf32>
    %r1 = cim_graph.unary relu %y1 : tensor<1x8xf32> -> tensor<1x8xf32>
    %w2 = cim_graph.weight "b.w" : tensor<8x16xf32>
    %y2 = cim_graph.linear %r1, %w2 : (tensor<1x8xf32>, tensor<8x16xf32>) -> tensor<1x16xf32>
    func.return %y2 : tensor<1x16xf32>
  }
}

// CHECK:       builtin.module attributes {cim_tile.target = {spec = "tiny", name = "tiny", hash = "sha256:{{[0-9a-f]+}}"}, cim_tile.strategy = "cmswitch", cim_tile.predicted_cycles = 182 : i64}
// CHECK-LABEL: func.func @together
// CHECK:         weight "a.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         cim_tile.vector segment 0{{ ?}}(
// CHECK:         weight "b.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1>

// -----

// 64 vectors: a copy of a.w (1 array) saves more than the 18 cycles its
// 256 weight bytes take over the bus, so the DP pays a second segment entry
// to give each layer the whole chip: a.w 8 copies (8 vectors each), b.w (2
// arrays) 4 copies, against one segment where they share the 8 arrays.
// The DP's prediction is 1200 cycles priced by the estimate and 1192 by
// the MILP (pricing=milp), which finds a cheaper allocation of a segment
// than the estimate's greedy one since the copies' programs share the
// interconnect; both write the same copies.
builtin.module {
  func.func @copies_pay_for_a_segment(%x: tensor<64x32xf32>) -> tensor<64x16xf32> {
    %w1 = cim_graph.weight "a.w" : tensor<32x8xf32>
    %y1 = cim_graph.linear %x, %w1 : (tensor<64x32xf32>, tensor<32x8xf32>) -> tensor<64x8xf32>
    %r1 = cim_graph.unary relu %y1 : tensor<64x8xf32> -> tensor<64x8xf32>
    %w2 = cim_graph.weight "b.w" : tensor<8x16xf32>
    %y2 = cim_graph.linear %r1, %w2 : (tensor<64x8xf32>, tensor<8x16xf32>) -> tensor<64x16xf32>
    func.return %y2 : tensor<64x16xf32>
  }
}

// CHECK:       builtin.module attributes {cim_tile.target = {spec = "tiny", name = "tiny", hash = "sha256:{{[0-9a-f]+}}"}, cim_tile.strategy = "cmswitch", cim_tile.predicted_cycles = {{1200|1192}} : i64}
// CHECK-LABEL: func.func @copies_pay_for_a_segment
// CHECK:         weight "a.w" {{.*}} alloc <segment = 0, copies = 8, chunks = 1>
// CHECK:         cim_tile.vector segment 0{{ ?}}(
// CHECK:         weight "b.w" {{.*}} alloc <segment = 1, copies = 4, chunks = 1>

// -----

// big.w needs 12 arrays (1 row tile x 12 column tiles), more than the chip:
// it is a segment of its own and streams in 3 chunks of 4 arrays that
// alternate between the two halves of the chip (priced faster than 2 chunks
// of 8 + 4 on the same arrays); the relu after it runs in its segment. The layers around it keep one copy
// each: with 4 vectors, the copies the greedy step would add (small.w 4,
// after.w 2) save fewer MVM cycles than they cost (simulated: 628 cycles
// with one copy each, 700 with those copies).
builtin.module {
  func.func @streamed(%x: tensor<4x32xf32>) -> tensor<4x8xf32> {
    %w0 = cim_graph.weight "small.w" : tensor<32x8xf32>
    %y0 = cim_graph.linear %x, %w0 : (tensor<4x32xf32>, tensor<32x8xf32>) -> tensor<4x8xf32>
    %w1 = cim_graph.weight "big.w" : tensor<8x96xf32>
    %y1 = cim_graph.linear %y0, %w1 : (tensor<4x8xf32>, tensor<8x96xf32>) -> tensor<4x96xf32>
    %r1 = cim_graph.unary relu %y1 : tensor<4x96xf32> -> tensor<4x96xf32>
    %w2 = cim_graph.weight "after.w" : tensor<96x8xf32>
    %y2 = cim_graph.linear %r1, %w2 : (tensor<4x96xf32>, tensor<96x8xf32>) -> tensor<4x8xf32>
    func.return %y2 : tensor<4x8xf32>
  }
}

// CHECK-LABEL: func.func @streamed
// CHECK:         weight "small.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         weight "big.w" {{.*}} row_tiles = 1, col_tiles = 12, {{.*}} alloc <segment = 1, copies = 1, chunks = 3>
// CHECK:         cim_tile.vector segment 1{{ ?}}(
// CHECK:         weight "after.w" {{.*}} row_tiles = 3, col_tiles = 1, {{.*}} alloc <segment = 2, copies = 1, chunks = 1>
