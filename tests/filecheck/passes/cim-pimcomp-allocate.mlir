// RUN: cim-opt %s --split-input-file -p 'cim-pimcomp-allocate{target=tiny}' | filecheck %s
// RUN: cim-opt %s --split-input-file -p 'cim-pimcomp-allocate{target=tiny dataflow=latency blocks=4}' | filecheck %s --check-prefix=LL

// cim-pimcomp-allocate on `tiny` (2 cores x 4 arrays; an MVM takes 10 cycles
// for one vector and 8 more for each further vector): PIMCOMP's balance
// replication (the layer with the most MVM cycles gets the next copy, until
// that bottleneck cannot get faster or its copy does not fit), whole-core
// placement of copies that fit in a core, and the throughput (`batch`) or
// latency (`rows`) pipeline.

// Two 1-array layers, a (64 vectors) and b (16 vectors). A copy counts the
// cycles its weight takes to stream in: 18 for the second, 16 more for each
// further one. Throughput with one sample runs layer by layer: copies split
// the vectors. a, the bottleneck, gets 5 copies (13 vectors each, 106 + 66
// cycles); a sixth would be no faster (90 + 82), so balance stops there and
// b keeps one (130 cycles). Latency: both run in 4 row steps (a over the 64
// sequence positions, b over its 16 vectors), each step split between the
// copies: a stops at 4 copies (136 + 50; a sixth would tie, 104 + 82) and b
// keeps one (136 cycles): 3 arrays stay free.
builtin.module {
  func.func @balance(%s: tensor<1x64x32xf32>, %h: tensor<16x32xf32>) -> (tensor<64x8xf32>, tensor<16x8xf32>) {
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

// CHECK:       builtin.module attributes {cim_tile.strategy = "pimcomp-ht"}
// CHECK-LABEL: func.func @balance
// CHECK-NEXT:    cim_tile.dataflow segment 0 layer blocks 1
// CHECK:         cim_tile.vector segment 0{{ ?}}(%s)
// CHECK:         weight "a.w" {{.*}} alloc <segment = 0, copies = 5, chunks = 1> mode
// CHECK:         weight "b.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// LL:          builtin.module attributes {cim_tile.strategy = "pimcomp-ll"}
// LL-LABEL:    func.func @balance
// LL-NEXT:       cim_tile.dataflow segment 0 rows blocks 4
// LL:            weight "a.w" {{.*}} alloc <segment = 0, copies = 4, chunks = 1> mode
// LL:            weight "b.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// -----

// Core mapping: a copy of c (3 arrays) fits in a core of 4, so each copy
// starts on a multiple of 4 (the smallest divisor of 4 that holds it) and
// never straddles two cores; d (1 array) needs no alignment. The second copy
// of c goes to arrays 4-6, d to array 7; a third copy of c would start at 8.
builtin.module {
  func.func @cores(%s: tensor<1x64x32xf32>, %h: tensor<8x32xf32>) -> (tensor<64x24xf32>, tensor<8x8xf32>) {
    %x = cim_tile.vector (%s) : (tensor<1x64x32xf32>) -> tensor<64x32xf32> {
    ^bb0(%v: tensor<1x64x32xf32>):
      %u = cim_graph.reshape %v : tensor<1x64x32xf32> -> tensor<64x32xf32>
      cim_tile.yield %u : tensor<64x32xf32>
    }
    %c = cim_tile.mvm %x weight "c.w" layout kn tiling <k = 32, n = 24, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 3, groups_per_array = 1> mode <compute> : tensor<64x32xf32> -> tensor<64x24xf32>
    %d = cim_tile.mvm %h weight "d.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<8x32xf32> -> tensor<8x8xf32>
    func.return %c, %d : tensor<64x24xf32>, tensor<8x8xf32>
  }
}

// CHECK-LABEL: func.func @cores
// CHECK:         weight "c.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> align 4 mode
// CHECK:         weight "d.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// LL-LABEL:    func.func @cores
// LL:            weight "c.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> align 4 mode

// -----

// Two samples: throughput pipelines them through the segment, one step per
// sample. A second copy would run the two steps at once (10 cycles instead
// of 2 x 10) but takes 18 cycles to stream its weight in: one copy. Latency
// has no feature-map rows or sequence positions to pipeline here (a 2-D
// input): the segment runs layer by layer, and a second copy splitting the
// two vectors (10 + 18 cycles instead of 18) does not pay either.
builtin.module {
  func.func @samples(%x: tensor<2x32xf32>) -> tensor<2x8xf32> {
    %y = cim_tile.mvm %x weight "s.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<2x32xf32> -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK-LABEL: func.func @samples
// CHECK-NEXT:    cim_tile.dataflow segment 0 batch blocks 2
// CHECK-NEXT:    weight "s.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// LL-LABEL:    func.func @samples
// LL-NEXT:       cim_tile.dataflow segment 0 layer blocks 1
// LL-NEXT:       weight "s.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// -----

// PIMCOMP needs the whole model on chip; here a layer larger than the chip
// (256 arrays) streams its weight in 32 chunks in a segment of its own, and
// the layers around it get segments of their own too, as in the static
// baseline.
builtin.module {
  func.func @streamed(%x: tensor<1x32xf32>, %h: tensor<1x256xf32>) -> (tensor<1x8xf32>, tensor<1x8xf32>) {
    %s = cim_tile.mvm %x weight "small.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x8xf32>
    %b = cim_tile.mvm %h weight "big.w" layout kn tiling <k = 256, n = 256, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 8, col_tiles = 32, groups_per_array = 1> mode <compute> : tensor<1x256xf32> -> tensor<1x256xf32>
    %a = cim_tile.mvm %b weight "after.w" layout kn tiling <k = 256, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 8, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<1x256xf32> -> tensor<1x8xf32>
    func.return %s, %a : tensor<1x8xf32>, tensor<1x8xf32>
  }
}

// CHECK-LABEL: func.func @streamed
// CHECK-NEXT:    cim_tile.dataflow segment 0 layer blocks 1
// CHECK-NEXT:    cim_tile.dataflow segment 1 layer blocks 1
// CHECK-NEXT:    cim_tile.dataflow segment 2 layer blocks 1
// CHECK-NEXT:    weight "small.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode
// CHECK-NEXT:    weight "big.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 32> mode
// CHECK-NEXT:    weight "after.w" {{.*}} alloc <segment = 2, copies = 1, chunks = 1> mode

// LL-LABEL:    func.func @streamed
// LL:            weight "big.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 32> mode
