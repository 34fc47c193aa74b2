// Input of cim-allocate.mlir's MATMUL checks: an activation matmul alone in
// its segment, wide (q [2, 16, 32] @ kt [2, 32, 8]) and narrow
// (q [1, 1, 4] @ kt [1, 4, 2]), on a target whose arrays can be written
// with activations.
builtin.module {
  func.func @wide(%q: tensor<2x16x32xf32>, %kt: tensor<2x32x8xf32>) -> tensor<2x16x8xf32> {
    %s = cim_tile.vector segment 0 (%q, %kt) : (tensor<2x16x32xf32>, tensor<2x32x8xf32>) -> tensor<2x16x8xf32> {
    ^bb0(%0: tensor<2x16x32xf32>, %1: tensor<2x32x8xf32>):
      %2 = cim_graph.matmul %0, %1 : (tensor<2x16x32xf32>, tensor<2x32x8xf32>) -> tensor<2x16x8xf32>
      cim_tile.yield %2 : tensor<2x16x8xf32>
    }
    func.return %s : tensor<2x16x8xf32>
  }
}
// -----
builtin.module {
  func.func @narrow(%q: tensor<1x1x4xf32>, %kt: tensor<1x4x2xf32>) -> tensor<1x1x2xf32> {
    %s = cim_tile.vector segment 0 (%q, %kt) : (tensor<1x1x4xf32>, tensor<1x4x2xf32>) -> tensor<1x1x2xf32> {
    ^bb0(%0: tensor<1x1x4xf32>, %1: tensor<1x4x2xf32>):
      %2 = cim_graph.matmul %0, %1 : (tensor<1x1x4xf32>, tensor<1x4x2xf32>) -> tensor<1x1x2xf32>
      cim_tile.yield %2 : tensor<1x1x2xf32>
    }
    func.return %s : tensor<1x1x2xf32>
  }
}
