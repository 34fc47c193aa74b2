// A weight of 32 column tiles (32 arrays) streamed through tiny's 8 arrays,
// its input the model input x (8 x 32, 256 B), which lives in DRAM
// (cim-allocate.mlir's INPUTS and NO-INPUTS checks).
builtin.module {
  func.func @stream_input(%x: tensor<8x32xf32>) -> tensor<8x256xf32> {
    %y = cim_tile.mvm %x weight "w" layout kn tiling <k = 32, n = 256, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 32, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 4> mode <compute> : tensor<8x32xf32> -> tensor<8x256xf32>
    func.return %y : tensor<8x256xf32>
  }
}
