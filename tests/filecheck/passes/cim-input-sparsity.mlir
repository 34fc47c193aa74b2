// RUN: cim-opt %s -p 'convert-graph-to-tile{target=ciminus},cim-input-sparsity{profile="%S/Inputs/zero_planes.json"}' | filecheck %s
// RUN: cim-opt %s -p 'convert-graph-to-tile{target=ciminus},cim-input-sparsity{profile="%S/Inputs/zero_planes.json" objective=always}' | filecheck %s --check-prefix=ALL
// RUN: cim-opt %s -p 'convert-graph-to-tile{target=ciminus},cim-input-sparsity{profile="%S/Inputs/zero_planes.json"},cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=META
// RUN: cim-opt %s -p 'convert-graph-to-tile{target=ciminus},cim-input-sparsity{profile="%S/Inputs/zero_planes.json"},cim-static-allocate,convert-tile-to-meta' | cim-opt | filecheck %s --check-prefix=META
// RUN: not cim-opt %s -p 'convert-graph-to-tile{target=tiny},cim-input-sparsity{profile="%S/Inputs/zero_planes.json"}' 2>&1 | filecheck %s --check-prefix=NODETECT

// cim-input-sparsity on `ciminus` (zero detectors of 32 rows on its
// 1024-row passes; a detection 0.1 pJ). The profile measured 16 of a.w's
// 64 input planes zero on a whole pass (0.25) and 48 of its 128 detector
// planes (0.375): on its 32 rows (one detector) a vector saves 0.375 x
// (3.84 pJ of macro + 8 x 32 x 0.01 pJ of drivers) = 2.4 pJ for 8 x 0.1 =
// 0.8 pJ of detections, so the default objective (energy) enables it. b.w's
// share is 4 of 128 (0.03125): on its 40 rows (two detectors) 0.03125 x
// (3.84 + 3.2) = 0.22 pJ saved for 1.6 pJ of detections: off, unless
// objective=always. c.w was not measured and stays off. The shares reach
// cim_meta.mvm through the lowering and survive a print/parse round trip.
builtin.module {
  func.func @planes(%x: tensor<1x32xf32>) -> tensor<1x8xf32> {
    %w1 = cim_graph.weight "a.w" : tensor<32x40xf32>
    %y1 = cim_graph.linear %x, %w1 {cim_graph.node = "a"} : (tensor<1x32xf32>, tensor<32x40xf32>) -> tensor<1x40xf32>
    %w2 = cim_graph.weight "b.w" : tensor<40x12xf32>
    %y2 = cim_graph.linear %y1, %w2 {cim_graph.node = "b"} : (tensor<1x40xf32>, tensor<40x12xf32>) -> tensor<1x12xf32>
    %w3 = cim_graph.weight "c.w" : tensor<12x8xf32>
    %y3 = cim_graph.linear %y2, %w3 {cim_graph.node = "c"} : (tensor<1x12xf32>, tensor<12x8xf32>) -> tensor<1x8xf32>
    func.return %y3 : tensor<1x8xf32>
  }
}

// CHECK:      cim_tile.mvm %x weight "a.w" {{.*}} zero_planes 2.500000e-01 zero_groups 3.750000e-01 mode <compute>
// CHECK:      cim_tile.mvm %{{.*}} weight "b.w"
// CHECK-NOT:  zero_planes
// CHECK-SAME: mode <compute>
// CHECK:      cim_tile.mvm %{{.*}} weight "c.w"
// CHECK-NOT:  zero_planes
// CHECK-SAME: mode <compute>

// ALL:        weight "a.w" {{.*}} zero_planes 2.500000e-01 zero_groups 3.750000e-01
// ALL:        weight "b.w" {{.*}} zero_planes 3.120000e-02 zero_groups 3.120000e-02
// ALL:        weight "c.w"
// ALL-NOT:    zero_planes
// ALL-SAME:   mode <compute>

// META:       cim_meta.mvm "a.w" {{.*}} zero_planes 2.500000e-01 zero_groups 3.750000e-01
// META:       cim_meta.mvm "b.w"
// META-NOT:   zero_planes
// META-SAME:  segment

// NODETECT:   cim-input-sparsity: target 'tiny' has no zero detectors (array.zero_skip = false)
