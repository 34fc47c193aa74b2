// RUN: cim-opt %s --split-input-file -p 'cim-mlc-allocate{target="%S/Inputs/tiny_core.toml"}' | filecheck %s --check-prefix=CORE
// RUN: cim-opt %s --split-input-file -p 'cim-mlc-allocate{target=tiny}' | filecheck %s --check-prefix=XBAR
// RUN: cim-opt %s --split-input-file -p 'cim-mlc-allocate{target=jain_wordline}' | filecheck %s --check-prefix=WL

// cim-mlc-allocate maps at the granularity the target's ISA exposes:
// `Inputs/tiny_core.toml` is the `tiny` target (2 cores x 4 arrays) in core
// mode, `tiny` itself is in crossbar mode, `jain_wordline` (4 cores x 2
// arrays of 256 rows, 32 of them driven at once) in wordline mode. Extra
// copies come from CIM-MLC's dynamic program: the fewest total MVM cycles of
// the segment for the cores (core mode) or arrays (otherwise) left.

// One 1-array layer of 64 vectors (no rows to pipeline: layer by layer, the
// copies split the vectors). In core mode a copy is a whole core: 2 copies,
// each starting on a core boundary (align 4). In crossbar mode a copy is one
// array: 5 copies of 13 vectors (106 cycles, and 66 more to stream the 4
// extra copies' weights in; 8 copies of 8 vectors would take 66 + 114).
builtin.module {
  func.func @one_layer(%s: tensor<1x64x32xf32>) -> tensor<64x8xf32> {
    %x = cim_tile.vector (%s) : (tensor<1x64x32xf32>) -> tensor<64x32xf32> {
    ^bb0(%v: tensor<1x64x32xf32>):
      %u = cim_graph.reshape %v : tensor<1x64x32xf32> -> tensor<64x32xf32>
      cim_tile.yield %u : tensor<64x32xf32>
    }
    %a = cim_tile.mvm %x weight "a.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<64x32xf32> -> tensor<64x8xf32>
    func.return %a : tensor<64x8xf32>
  }
}

// CORE:       builtin.module attributes {cim_tile.strategy = "cim-mlc"}
// CORE-LABEL: func.func @one_layer
// CORE-NEXT:    cim_tile.dataflow segment 0 layer blocks 1
// CORE:         weight "a.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> align 4 mode

// XBAR-LABEL: func.func @one_layer
// XBAR:         weight "a.w" {{.*}} alloc <segment = 0, copies = 5, chunks = 1> mode

// -----

// Three layers of 4, 1 and 1 arrays. In core mode each takes a whole core,
// so only two fit a segment of the 2-core chip; in crossbar mode all three
// share segment 0 (6 arrays), and with one vector each no copy helps.
builtin.module {
  func.func @three_layers(%x: tensor<1x32xf32>) -> tensor<1x8xf32> {
    %l1 = cim_tile.mvm %x weight "l1.w" layout kn tiling <k = 32, n = 32, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 4, groups_per_array = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x32xf32>
    %l2 = cim_tile.mvm %l1 weight "l2.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x8xf32>
    %l3 = cim_tile.mvm %l2 weight "l3.w" layout kn tiling <k = 8, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<1x8xf32> -> tensor<1x8xf32>
    func.return %l3 : tensor<1x8xf32>
  }
}

// CORE-LABEL: func.func @three_layers
// CORE:         weight "l1.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> align 4 mode
// CORE:         weight "l2.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> align 4 mode
// CORE:         weight "l3.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1> align 4 mode

// XBAR-LABEL: func.func @three_layers
// XBAR:         weight "l1.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode
// XBAR:         weight "l2.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode
// XBAR:         weight "l3.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1> mode

// -----

// Wordline mode (jain_wordline: 256 x 64 arrays, 8 outputs per array, 32
// rows at once, 66 cycles per pass and 64 per further vector). deep (k = 256)
// takes 8 passes per vector, shallow (k = 32) one; both have 16 vectors. The
// cost model charges the passes, so the 6 spare arrays go mostly to deep:
// 6 copies (3 vectors each: 8 x 194 cycles) and shallow 2 (8 vectors: 514).
builtin.module {
  func.func @passes(%s: tensor<1x16x256xf32>, %h: tensor<16x32xf32>) -> (tensor<16x8xf32>, tensor<16x8xf32>) {
    %x = cim_tile.vector (%s) : (tensor<1x16x256xf32>) -> tensor<16x256xf32> {
    ^bb0(%v: tensor<1x16x256xf32>):
      %u = cim_graph.reshape %v : tensor<1x16x256xf32> -> tensor<16x256xf32>
      cim_tile.yield %u : tensor<16x256xf32>
    }
    %d = cim_tile.mvm %x weight "deep.w" layout kn tiling <k = 256, n = 8, groups = 1, rows = 256, cols = 64, bit_slices = 8, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<16x256xf32> -> tensor<16x8xf32>
    %w = cim_tile.mvm %h weight "shallow.w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 256, cols = 64, bit_slices = 8, row_tiles = 1, col_tiles = 1, groups_per_array = 1> mode <compute> : tensor<16x32xf32> -> tensor<16x8xf32>
    func.return %d, %w : tensor<16x8xf32>, tensor<16x8xf32>
  }
}

// WL-LABEL:   func.func @passes
// WL-NEXT:      cim_tile.dataflow segment 0 layer blocks 1
// WL:           weight "deep.w" {{.*}} alloc <segment = 0, copies = 6, chunks = 1> mode
// WL:           weight "shallow.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1> mode
