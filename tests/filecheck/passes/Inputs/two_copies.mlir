// Two copies of a weight (set by hand), for the multicast RUN line of
// convert-tile-to-meta.mlir.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @copies(%x: tensor<4x32xf32>) -> tensor<4x8xf32> {
    %y = cim_tile.mvm %x weight "w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x8xf32>
    func.return %y : tensor<4x8xf32>
  }
}
