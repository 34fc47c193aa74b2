// RUN: cim-opt %s -p 'convert-graph-to-tile{target=tiny},cim-rows-per-pass{rows=16}' | filecheck %s
// RUN: cim-opt %s -p 'convert-graph-to-tile{target=tiny},cim-rows-per-pass{rows=16 layers=b}' | filecheck %s --check-prefix=LAYER
// RUN: cim-opt %s -p 'convert-graph-to-tile{target=tiny},cim-rows-per-pass{rows=16},cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=META
// RUN: cim-opt %s -p 'convert-graph-to-tile{target=tiny},cim-rows-per-pass{rows=16},cim-static-allocate,convert-tile-to-meta' | cim-opt | filecheck %s --check-prefix=META
// RUN: cim-opt %s -p 'convert-graph-to-tile{target=tiny},cim-rows-per-pass{lossless=true}' | filecheck %s --check-prefix=LOSSLESS

// cim-rows-per-pass on `tiny` (32 x 32 arrays, all 32 rows driven at once,
// 2-bit cells, a 1-bit DAC and an 8-bit ADC). With rows=16, an MVM whose
// arrays use more than 16 rows (k = 32: 32 rows; k = 40: 32 and 8) drives
// 16 per pass; one that uses 16 or fewer (k = 12) is left as it is.
// lossless=true asks for floor(255 / (1 x 3)) = 85 rows, more than tiny's
// arrays have: nothing changes.
builtin.module {
  func.func @passes(%x: tensor<1x32xf32>) -> tensor<1x8xf32> {
    %w1 = cim_graph.weight "a.w" : tensor<32x40xf32>
    %y1 = cim_graph.linear %x, %w1 {cim_graph.node = "a"} : (tensor<1x32xf32>, tensor<32x40xf32>) -> tensor<1x40xf32>
    %w2 = cim_graph.weight "b.w" : tensor<40x12xf32>
    %y2 = cim_graph.linear %y1, %w2 {cim_graph.node = "b"} : (tensor<1x40xf32>, tensor<40x12xf32>) -> tensor<1x12xf32>
    %w3 = cim_graph.weight "c.w" : tensor<12x8xf32>
    %y3 = cim_graph.linear %y2, %w3 {cim_graph.node = "c"} : (tensor<1x12xf32>, tensor<12x8xf32>) -> tensor<1x8xf32>
    func.return %y3 : tensor<1x8xf32>
  }
}

// CHECK:      cim_tile.mvm %x weight "a.w" {{.*}} rows_per_pass 16 mode <compute>
// CHECK:      cim_tile.mvm %{{.*}} weight "b.w" {{.*}} rows_per_pass 16 mode <compute>
// CHECK:      cim_tile.mvm %{{.*}} weight "c.w"
// CHECK-NOT:  rows_per_pass
// CHECK-SAME: mode <compute>

// LAYER:      cim_tile.mvm %x weight "a.w"
// LAYER-NOT:  rows_per_pass
// LAYER-SAME: mode <compute>
// LAYER:      cim_tile.mvm %{{.*}} weight "b.w" {{.*}} rows_per_pass 16 mode <compute>

// META:       cim_meta.mvm "a.w" {{.*}} rows_per_pass 16
// META:       cim_meta.mvm "b.w" {{.*}} rows_per_pass 16
// META:       cim_meta.mvm "c.w"
// META-NOT:   rows_per_pass
// META-SAME:  segment

// LOSSLESS-NOT: rows_per_pass
