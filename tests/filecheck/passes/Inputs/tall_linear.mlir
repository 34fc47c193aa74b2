// LLaMA-2-7B's down projection shape (11008 -> 4096) on two vectors: on
// dynaplasia's 96 arrays of 320 rows its columns take 35 row tiles each.
builtin.module {
  func.func @tall(%x: tensor<2x11008xf32>) -> tensor<2x4096xf32> {
    %w = cim_graph.weight "down.w" : tensor<11008x4096xf32>
    %y = cim_graph.linear %x, %w : (tensor<2x11008xf32>, tensor<11008x4096xf32>) -> tensor<2x4096xf32>
    func.return %y : tensor<2x4096xf32>
  }
}
