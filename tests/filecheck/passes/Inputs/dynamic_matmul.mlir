// Input of convert-tile-to-meta.mlir's DYNAMIC checks: attention of 2 heads,
// scores q @ kt (4 rows of 8 by 8 columns each), then scores @ v, on a
// target whose arrays can be written with activations.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @attention(%q: tensor<2x4x8xf32>, %kt: tensor<2x8x8xf32>, %v: tensor<2x8x8xf32>) -> tensor<2x4x8xf32> {
    %s = cim_tile.vector segment 0 (%q, %kt) : (tensor<2x4x8xf32>, tensor<2x8x8xf32>) -> tensor<2x4x8xf32> {
    ^bb0(%0: tensor<2x4x8xf32>, %1: tensor<2x8x8xf32>):
      %2 = cim_graph.matmul %0, %1 : (tensor<2x4x8xf32>, tensor<2x8x8xf32>) -> tensor<2x4x8xf32>
      cim_tile.yield %2 : tensor<2x4x8xf32>
    }
    %o = cim_tile.vector segment 0 (%s, %v) : (tensor<2x4x8xf32>, tensor<2x8x8xf32>) -> tensor<2x4x8xf32> {
    ^bb0(%3: tensor<2x4x8xf32>, %4: tensor<2x8x8xf32>):
      %5 = cim_graph.matmul %3, %4 : (tensor<2x4x8xf32>, tensor<2x8x8xf32>) -> tensor<2x4x8xf32>
      cim_tile.yield %5 : tensor<2x4x8xf32>
    }
    func.return %o : tensor<2x4x8xf32>
  }
}
