// RUN: cim-opt %s --split-input-file -p 'convert-tile-to-meta{target=tiny}' | filecheck %s

// convert-tile-to-meta on hand-written, already allocated cim_tile IR for the
// `tiny` target (8 arrays of 32 x 32, 4 bit slices, 1-byte activations and
// weights, 4-byte accumulators, 2 vector units, a 4096-byte global buffer).

// Two segments. Each segment starts with a barrier on everything before it,
// then loads and programs the weights resident in it, giving out arrays from
// array 0 again. The model input is loaded from DRAM, moved to the arrays and
// multiplied; l2.w has 2 row tiles, so its 24 outputs come back as 4-byte
// partial sums (96 bytes) and are added on the vector units (24 adds). Each
// weight is declared (layout and its tiling's groups, k, n) among the tensors
// when its MVM is lowered. The relu carries its operator's parameters (the
// kind); the accumulate has none.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @segments(%x: tensor<1x32xf32>) -> tensor<1x24xf32> {
    %a = cim_tile.mvm %x weight "l1.w" layout kn tiling <k = 32, n = 40, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 5, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x40xf32>
    %r = cim_tile.vector segment 0 (%a) : (tensor<1x40xf32>) -> tensor<1x40xf32> {
    ^bb0(%0: tensor<1x40xf32>):
      %1 = cim_graph.unary relu %0 : tensor<1x40xf32> -> tensor<1x40xf32>
      cim_tile.yield %1 : tensor<1x40xf32>
    }
    %b = cim_tile.mvm %r weight "l2.w" layout kn tiling <k = 40, n = 24, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 3, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 1> mode <compute> : tensor<1x40xf32> -> tensor<1x24xf32>
    func.return %b : tensor<1x24xf32>
  }
}

// CHECK:      cim_meta.schedule @segments target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["b"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x32xf32> bytes 32
// CHECK-NEXT:   cim_meta.weight "l1.w" layout kn groups 1 k 32 n 40
// CHECK-NEXT:   cim_meta.tensor "a" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.weight "l2.w" layout kn groups 1 k 40 n 24
// CHECK-NEXT:   cim_meta.tensor "b" : tensor<1x24xf32> bytes 24
// CHECK-NEXT:   %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LW1:[0-9]+]] = cim_meta.load "l1.w" 1280 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:   %[[PW1:[0-9]+]] = cim_meta.program "l1.w" arrays <0:5> rows 32 cols 32 k [0, 32] n [0, 40] segment 0 label "l1.w" after(%[[LW1]])
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 32 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:   %[[MX:[0-9]+]] = cim_meta.move "input0" 32 bytes in cores <0:2> segment 0 label "l1.w" after(%[[LX]])
// CHECK-NEXT:   %[[M1:[0-9]+]] = cim_meta.mvm "l1.w" arrays <0:5> vectors 1 rows 32 cols 32 k [0, 32] n [0, 40] v [0, 1] input "input0" output "a" segment 0 label "l1.w" after(%[[MX]], %[[PW1]])
// CHECK-NEXT:   %[[G1:[0-9]+]] = cim_meta.move "a" 40 bytes out cores <0:2> segment 0 label "l1.w" after(%[[M1]])
// CHECK-NEXT:   %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 40 inputs ["a"] outputs ["r"] attrs {kind = #cim_graph<unary_kind relu>} segment 0 label "relu" after(%[[G1]])
// CHECK-NEXT:   %[[S1:[0-9]+]] = cim_meta.segment 1 after(%[[RELU]])
// CHECK-NEXT:   %[[LW2:[0-9]+]] = cim_meta.load "l2.w" 960 bytes dram -> buffer segment 1 label "l2.w" after(%[[S1]])
// CHECK-NEXT:   %[[PW2:[0-9]+]] = cim_meta.program "l2.w" arrays <0:6> rows 32 cols 32 k [0, 40] n [0, 24] segment 1 label "l2.w" after(%[[LW2]])
// CHECK-NEXT:   %[[MR:[0-9]+]] = cim_meta.move "r" 40 bytes in cores <0:2> segment 1 label "l2.w" after(%[[RELU]])
// CHECK-NEXT:   %[[M2:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:6> vectors 1 rows 32 cols 32 k [0, 40] n [0, 24] v [0, 1] input "r" output "b" segment 1 label "l2.w" after(%[[MR]], %[[PW2]])
// CHECK-NEXT:   %[[G2:[0-9]+]] = cim_meta.move "b" 192 bytes out cores <0:2> segment 1 label "l2.w" after(%[[M2]])
// CHECK-NEXT:   %[[ACC:[0-9]+]] = cim_meta.vector "accumulate" element_ops 24 inputs ["b"] outputs ["b"] attrs {} segment 1 label "l2.w" after(%[[G2]])
// CHECK-NEXT:   cim_meta.store "b" 24 bytes buffer -> dram segment 1 label "output0" after(%[[ACC]])
// CHECK-NEXT: }

// -----

// Two copies of a weight (set by hand): each copy gets its own arrays and
// program, and the 4 input vectors are split between them in one parallel
// group. The batch is the first input's leading dimension. The weight is
// declared once however many copies hold it.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @copies(%x: tensor<4x32xf32>) -> tensor<4x8xf32> {
    %y = cim_tile.mvm %x weight "w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x8xf32>
    func.return %y : tensor<4x8xf32>
  }
}

// CHECK:      cim_meta.schedule @copies target "tiny" strategy "static" batch 4 inputs ["input0"] outputs ["y"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<4x32xf32> bytes 128
// CHECK-NEXT:   cim_meta.weight "w" layout kn groups 1 k 32 n 8
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<4x8xf32> bytes 32
// CHECK-NEXT:   %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LW:[0-9]+]] = cim_meta.load "w" 256 bytes dram -> buffer segment 0 label "w" after(%[[S0]])
// CHECK-NEXT:   %[[P0:[0-9]+]] = cim_meta.program "w" arrays <0:1> rows 32 cols 32 k [0, 32] n [0, 8] segment 0 label "w" after(%[[LW]])
// CHECK-NEXT:   %[[P1:[0-9]+]] = cim_meta.program "w" arrays <1:2> rows 32 cols 32 k [0, 32] n [0, 8] segment 0 label "w" after(%[[LW]])
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 128 bytes dram -> buffer segment 0 label "w" after(%[[S0]])
// CHECK-NEXT:   %[[MX:[0-9]+]] = cim_meta.move "input0" 128 bytes in cores <0:1> segment 0 label "w" after(%[[LX]])
// CHECK-NEXT:   %[[PAR:[0-9]+]] = cim_meta.parallel segment 0 label "w" {
// CHECK-NEXT:     cim_meta.mvm "w" arrays <0:1> vectors 2 rows 32 cols 32 k [0, 32] n [0, 8] v [0, 2] input "input0" output "y" segment 0 label "w" after(%[[MX]], %[[P0]])
// CHECK-NEXT:     cim_meta.mvm "w" arrays <1:2> vectors 2 rows 32 cols 32 k [0, 32] n [0, 8] v [2, 4] input "input0" output "y" segment 0 label "w" after(%[[MX]], %[[P1]])
// CHECK-NEXT:   }
// CHECK-NEXT:   %[[G:[0-9]+]] = cim_meta.move "y" 32 bytes out cores <0:1> segment 0 label "w" after(%[[PAR]])
// CHECK-NEXT:   cim_meta.store "y" 32 bytes buffer -> dram segment 0 label "output0" after(%[[G]])

// -----

// A weight streamed in chunks: 256 x 256 on 8 arrays (8 row tiles x 32 column
// tiles). Each chunk is all 8 row tiles of one column tile (8 outputs): load
// 256 x 8 = 2048 bytes, program arrays 0..7, multiply. The next chunk's load
// and program wait for the previous chunk's MVM (they reuse the arrays). The
// 256 outputs come back as 8 row tiles of 4-byte partial sums (8192 bytes)
// and are added:
// 256 x 7 = 1792 adds. The streamed weight is declared once, whole (k = 256,
// n = 256), not per chunk.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @chunked(%h: tensor<1x256xf32>) -> tensor<1x256xf32> {
    %y = cim_tile.mvm %h weight "big.w" layout kn tiling <k = 256, n = 256, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 8, col_tiles = 32, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 32> mode <compute> : tensor<1x256xf32> -> tensor<1x256xf32>
    func.return %y : tensor<1x256xf32>
  }
}

// CHECK:      cim_meta.schedule @chunked
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x256xf32> bytes 256
// CHECK-NEXT:   cim_meta.weight "big.w" layout kn groups 1 k 256 n 256
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<1x256xf32> bytes 256
// CHECK-NEXT:   %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 256 bytes dram -> buffer segment 0 label "big.w" after(%[[S0]])
// CHECK-NEXT:   %[[MX:[0-9]+]] = cim_meta.move "input0" 256 bytes in segment 0 label "big.w" after(%[[LX]])
// CHECK-NEXT:   %[[L0:[0-9]+]] = cim_meta.load "big.w" 2048 bytes dram -> buffer segment 0 label "big.w" after(%[[S0]])
// CHECK-NEXT:   %[[P0:[0-9]+]] = cim_meta.program "big.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [0, 8] segment 0 label "big.w" after(%[[L0]])
// CHECK-NEXT:   %[[M0:[0-9]+]] = cim_meta.mvm "big.w" arrays <0:8> vectors 1 rows 32 cols 32 k [0, 256] n [0, 8] v [0, 1] input "input0" output "y" segment 0 label "big.w" after(%[[MX]], %[[P0]])
// CHECK-NEXT:   %[[L1:[0-9]+]] = cim_meta.load "big.w" 2048 bytes dram -> buffer segment 0 label "big.w" after(%[[M0]])
// CHECK-NEXT:   %[[P1:[0-9]+]] = cim_meta.program "big.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [8, 16] segment 0 label "big.w" after(%[[L1]], %[[M0]])
// CHECK-NEXT:   %[[M1:[0-9]+]] = cim_meta.mvm "big.w" arrays <0:8> vectors 1 rows 32 cols 32 k [0, 256] n [8, 16] v [0, 1] input "input0" output "y" segment 0 label "big.w" after(%[[MX]], %[[P1]])
// CHECK-NEXT:   cim_meta.load "big.w" 2048 bytes dram -> buffer segment 0 label "big.w" after(%[[M1]])
// CHECK-COUNT-29: cim_meta.mvm "big.w" arrays <0:8>
// CHECK-NOT:    cim_meta.mvm
// CHECK:        %[[PL:[0-9]+]] = cim_meta.program "big.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [248, 256]
// CHECK-NEXT:   %[[ML:[0-9]+]] = cim_meta.mvm "big.w" arrays <0:8> vectors 1 rows 32 cols 32 k [0, 256] n [248, 256] v [0, 1] input "input0" output "y" segment 0 label "big.w" after(%[[MX]], %[[PL]])
// CHECK-NEXT:   %[[G:[0-9]+]] = cim_meta.move "y" 8192 bytes out segment 0 label "big.w" after(%[[ML]])
// CHECK-NEXT:   %[[ACC:[0-9]+]] = cim_meta.vector "accumulate" element_ops 1792 inputs ["y"] outputs ["y"] attrs {} segment 0 label "big.w" after(%[[G]])
// CHECK-NEXT:   cim_meta.store "y" 256 bytes buffer -> dram segment 0 label "output0" after(%[[ACC]])

// -----

// Spilling: r = relu(x) is 3072 bytes, more than half of the 4096-byte global
// buffer, so it is stored to DRAM as soon as it is produced and each consumer
// (sigmoid, add) loads it again after the store. The model input starts in
// DRAM; an output that was spilled already ends there (no final store).
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @spill(%x: tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    %r = cim_tile.vector segment 0 (%x) : (tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    ^bb0(%0: tensor<1x3072xf32>):
      %1 = cim_graph.unary relu %0 : tensor<1x3072xf32> -> tensor<1x3072xf32>
      cim_tile.yield %1 : tensor<1x3072xf32>
    }
    %s = cim_tile.vector segment 0 (%r) : (tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    ^bb0(%2: tensor<1x3072xf32>):
      %3 = cim_graph.unary sigmoid %2 : tensor<1x3072xf32> -> tensor<1x3072xf32>
      cim_tile.yield %3 : tensor<1x3072xf32>
    }
    %t = cim_tile.vector segment 0 (%r, %s) : (tensor<1x3072xf32>, tensor<1x3072xf32>) -> tensor<1x3072xf32> {
    ^bb0(%4: tensor<1x3072xf32>, %5: tensor<1x3072xf32>):
      %6 = cim_graph.binary add %4, %5 : (tensor<1x3072xf32>, tensor<1x3072xf32>) -> tensor<1x3072xf32>
      cim_tile.yield %6 : tensor<1x3072xf32>
    }
    func.return %t : tensor<1x3072xf32>
  }
}

// CHECK:      cim_meta.schedule @spill
// CHECK:        %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 3072 bytes dram -> buffer segment 0 label "relu" after(%[[S0]])
// CHECK-NEXT:   %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 3072 inputs ["input0"] outputs ["r"] attrs {kind = #cim_graph<unary_kind relu>} segment 0 label "relu" after(%[[LX]])
// CHECK-NEXT:   %[[SR:[0-9]+]] = cim_meta.store "r" 3072 bytes buffer -> dram segment 0 label "relu" after(%[[RELU]])
// CHECK-NEXT:   %[[LR1:[0-9]+]] = cim_meta.load "r" 3072 bytes dram -> buffer segment 0 label "sigmoid" after(%[[SR]])
// CHECK-NEXT:   %[[SIG:[0-9]+]] = cim_meta.vector "sigmoid" element_ops 12288 inputs ["r"] outputs ["s"] attrs {kind = #cim_graph<unary_kind sigmoid>} segment 0 label "sigmoid" after(%[[LR1]])
// CHECK-NEXT:   %[[SS:[0-9]+]] = cim_meta.store "s" 3072 bytes buffer -> dram segment 0 label "sigmoid" after(%[[SIG]])
// CHECK-NEXT:   %[[LR2:[0-9]+]] = cim_meta.load "r" 3072 bytes dram -> buffer segment 0 label "add" after(%[[SR]])
// CHECK-NEXT:   %[[LS:[0-9]+]] = cim_meta.load "s" 3072 bytes dram -> buffer segment 0 label "add" after(%[[SS]])
// CHECK-NEXT:   %[[ADD:[0-9]+]] = cim_meta.vector "add" element_ops 3072 inputs ["r", "s"] outputs ["t"] attrs {kind = #cim_graph<binary_kind add>} segment 0 label "add" after(%[[LR2]], %[[LS]])
// CHECK-NEXT:   cim_meta.store "t" 3072 bytes buffer -> dram segment 0 label "add" after(%[[ADD]])
// CHECK-NEXT: }

// -----

// A small tensor (2048 bytes, exactly half the buffer) is not spilled.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @no_spill(%x: tensor<1x2048xf32>) -> tensor<1x2048xf32> {
    %r = cim_tile.vector segment 0 (%x) : (tensor<1x2048xf32>) -> tensor<1x2048xf32> {
    ^bb0(%0: tensor<1x2048xf32>):
      %1 = cim_graph.unary relu %0 : tensor<1x2048xf32> -> tensor<1x2048xf32>
      cim_tile.yield %1 : tensor<1x2048xf32>
    }
    %s = cim_tile.vector segment 0 (%r) : (tensor<1x2048xf32>) -> tensor<1x2048xf32> {
    ^bb0(%2: tensor<1x2048xf32>):
      %3 = cim_graph.unary relu %2 : tensor<1x2048xf32> -> tensor<1x2048xf32>
      cim_tile.yield %3 : tensor<1x2048xf32>
    }
    func.return %s : tensor<1x2048xf32>
  }
}

// CHECK:      cim_meta.schedule @no_spill
// CHECK:        %[[R:[0-9]+]] = cim_meta.vector "relu" {{.*}} outputs ["r"]
// CHECK-NEXT:   %[[S:[0-9]+]] = cim_meta.vector "relu" {{.*}} inputs ["r"] outputs ["s"] attrs {kind = #cim_graph<unary_kind relu>} segment 0 label "relu" after(%[[R]])
// CHECK-NEXT:   cim_meta.store "s" 2048 bytes buffer -> dram segment 0 label "output0" after(%[[S]])
// CHECK-NEXT: }

// -----

// Weights of vector work (the layer-norm scale and bias, 32 one-byte values
// each) are loaded from DRAM after the segment barrier; layer norm costs 8
// lane operations per output element (4 x 32 x 8 = 1024). Weights read by
// vector work are not array-held: no cim_meta.weight. The vector op carries
// the norm's axis and epsilon.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @norm(%x: tensor<1x4x32xf32>) -> tensor<1x4x32xf32> {
    %g = cim_graph.weight "ln.g" : tensor<32xf32>
    %b = cim_graph.weight "ln.b" : tensor<32xf32>
    %y = cim_tile.vector segment 0 (%x, %g, %b) : (tensor<1x4x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32> {
    ^bb0(%0: tensor<1x4x32xf32>, %1: tensor<32xf32>, %2: tensor<32xf32>):
      %3 = cim_graph.layer_norm %0, %1, %2 axis -1 epsilon 1.000000e-05 : (tensor<1x4x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32>
      cim_tile.yield %3 : tensor<1x4x32xf32>
    }
    func.return %y : tensor<1x4x32xf32>
  }
}

// CHECK:      cim_meta.schedule @norm
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x4x32xf32> bytes 128
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<1x4x32xf32> bytes 128
// CHECK-NEXT:   %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 128 bytes dram -> buffer segment 0 label "layer_norm" after(%[[S0]])
// CHECK-NEXT:   %[[LG:[0-9]+]] = cim_meta.load "ln.g" 32 bytes dram -> buffer segment 0 label "layer_norm" after(%[[S0]])
// CHECK-NEXT:   %[[LB:[0-9]+]] = cim_meta.load "ln.b" 32 bytes dram -> buffer segment 0 label "layer_norm" after(%[[S0]])
// CHECK-NEXT:   %[[LN:[0-9]+]] = cim_meta.vector "layer_norm" element_ops 1024 inputs ["input0", "ln.g", "ln.b"] outputs ["y"] attrs {axis = -1 : i64, epsilon = 1.000000e-05 : f32} segment 0 label "layer_norm" after(%[[LX]], %[[LG]], %[[LB]])
// CHECK-NEXT:   cim_meta.store "y" 128 bytes buffer -> dram segment 0 label "output0" after(%[[LN]])

// -----

// Small constants (cim_graph.constant) read by vector work are declared as
// cim_meta.constant with their values, once each, where first read, named
// after the value (or "const", made unique) in the tensors' namespace; the
// vector ops name them among their inputs, next to tensors and weights.
// Nothing loads them (the embedding table, a weight, is loaded: only the one
// gathered row, 4 bytes).
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @constants(%x: tensor<1x4xf32>) -> (tensor<1x4xf32>, tensor<1x4xf32>) {
    %scale = cim_graph.constant dense<[0.5, 2.0, -1.0, 4.0]> : tensor<4xf32>
    %10 = cim_graph.constant dense<1.250000e-01> : tensor<f32>
    %11 = cim_graph.constant dense<3> : tensor<1xi64>
    %table = cim_graph.weight "emb" : tensor<8x4xf32>
    %y = cim_tile.vector segment 0 (%x, %scale) : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32> {
    ^bb0(%0: tensor<1x4xf32>, %1: tensor<4xf32>):
      %2 = cim_graph.binary mul %0, %1 : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32>
      cim_tile.yield %2 : tensor<1x4xf32>
    }
    %z = cim_tile.vector segment 0 (%y, %10) : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32> {
    ^bb0(%3: tensor<1x4xf32>, %4: tensor<f32>):
      %5 = cim_graph.binary add %3, %4 : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
      cim_tile.yield %5 : tensor<1x4xf32>
    }
    %m = cim_tile.vector segment 0 (%z, %scale) : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32> {
    ^bb0(%6: tensor<1x4xf32>, %7: tensor<4xf32>):
      %8 = cim_graph.binary sub %6, %7 : (tensor<1x4xf32>, tensor<4xf32>) -> tensor<1x4xf32>
      cim_tile.yield %8 : tensor<1x4xf32>
    }
    %e = cim_tile.vector segment 0 (%table, %11) : (tensor<8x4xf32>, tensor<1xi64>) -> tensor<1x4xf32> {
    ^bb0(%12: tensor<8x4xf32>, %13: tensor<1xi64>):
      %14 = cim_graph.gather %12, %13 axis 0 : (tensor<8x4xf32>, tensor<1xi64>) -> tensor<1x4xf32>
      cim_tile.yield %14 : tensor<1x4xf32>
    }
    func.return %m, %e : tensor<1x4xf32>, tensor<1x4xf32>
  }
}

// CHECK:      cim_meta.schedule @constants target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["m", "e"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.constant "scale" = dense<[5.000000e-01, 2.000000e+00, -1.000000e+00, 4.000000e+00]> : tensor<4xf32>
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.constant "const" = dense<1.250000e-01> : tensor<f32>
// CHECK-NEXT:   cim_meta.tensor "z" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.tensor "m" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   cim_meta.constant "const.1" = dense<3> : tensor<1xi64>
// CHECK-NEXT:   cim_meta.tensor "e" : tensor<1x4xf32> bytes 4
// CHECK-NEXT:   %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 4 bytes dram -> buffer segment 0 label "mul" after(%[[S0]])
// CHECK-NEXT:   %[[MUL:[0-9]+]] = cim_meta.vector "mul" element_ops 4 inputs ["input0", "scale"] outputs ["y"] attrs {kind = #cim_graph<binary_kind mul>} segment 0 label "mul" after(%[[LX]])
// CHECK-NEXT:   %[[ADD:[0-9]+]] = cim_meta.vector "add" element_ops 4 inputs ["y", "const"] outputs ["z"] attrs {kind = #cim_graph<binary_kind add>} segment 0 label "add" after(%[[MUL]])
// CHECK-NEXT:   %[[SUB:[0-9]+]] = cim_meta.vector "sub" element_ops 4 inputs ["z", "scale"] outputs ["m"] attrs {kind = #cim_graph<binary_kind sub>} segment 0 label "sub" after(%[[ADD]])
// CHECK-NEXT:   %[[LE:[0-9]+]] = cim_meta.load "emb" 4 bytes dram -> buffer segment 0 label "gather" after(%[[S0]])
// CHECK-NEXT:   %[[GATHER:[0-9]+]] = cim_meta.vector "gather" element_ops 4 inputs ["emb", "const.1"] outputs ["e"] attrs {axis = 0 : i64} segment 0 label "gather" after(%[[LE]])
// CHECK-NEXT:   cim_meta.store "m" 4 bytes buffer -> dram segment 0 label "output0" after(%[[SUB]])
// CHECK-NEXT:   cim_meta.store "e" 4 bytes buffer -> dram segment 0 label "output1" after(%[[GATHER]])
// CHECK-NEXT: }

// -----

// A vector op with several results (cim_graph.split): one cim_meta.vector
// names every piece in `outputs`, with the split axis in `attrs`; each piece
// is declared and becomes ready with it, so the relu of the second piece and
// the store of the first both wait for the split.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @split(%x: tensor<1x8xf32>) -> (tensor<1x3xf32>, tensor<1x5xf32>) {
    %q, %k = cim_tile.vector segment 0 (%x) : (tensor<1x8xf32>) -> (tensor<1x3xf32>, tensor<1x5xf32>) {
    ^bb0(%0: tensor<1x8xf32>):
      %1, %2 = cim_graph.split %0 axis 1 : tensor<1x8xf32> -> (tensor<1x3xf32>, tensor<1x5xf32>)
      cim_tile.yield %1, %2 : tensor<1x3xf32>, tensor<1x5xf32>
    }
    %r = cim_tile.vector segment 0 (%k) : (tensor<1x5xf32>) -> tensor<1x5xf32> {
    ^bb0(%3: tensor<1x5xf32>):
      %4 = cim_graph.unary relu %3 : tensor<1x5xf32> -> tensor<1x5xf32>
      cim_tile.yield %4 : tensor<1x5xf32>
    }
    func.return %q, %r : tensor<1x3xf32>, tensor<1x5xf32>
  }
}

// CHECK:      cim_meta.schedule @split target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["q", "r"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x8xf32> bytes 8
// CHECK-NEXT:   cim_meta.tensor "q" : tensor<1x3xf32> bytes 3
// CHECK-NEXT:   cim_meta.tensor "k" : tensor<1x5xf32> bytes 5
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x5xf32> bytes 5
// CHECK-NEXT:   %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 8 bytes dram -> buffer segment 0 label "split" after(%[[S0]])
// CHECK-NEXT:   %[[SPLIT:[0-9]+]] = cim_meta.vector "split" element_ops 8 inputs ["input0"] outputs ["q", "k"] attrs {axis = 1 : i64} segment 0 label "split" after(%[[LX]])
// CHECK-NEXT:   %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 5 inputs ["k"] outputs ["r"] attrs {kind = #cim_graph<unary_kind relu>} segment 0 label "relu" after(%[[SPLIT]])
// CHECK-NEXT:   cim_meta.store "q" 3 bytes buffer -> dram segment 0 label "output0" after(%[[SPLIT]])
// CHECK-NEXT:   cim_meta.store "r" 5 bytes buffer -> dram segment 0 label "output1" after(%[[RELU]])
// CHECK-NEXT: }

// -----

// A KV cache kept in memory-mode arrays: the kv_cache buffer (segment 0, 2
// arrays) holds the argument %past (named by its name hint; its trace name is
// input1) for the whole run. The 40-byte tensor needs one 256-byte array and
// gets the spare one too: it is declared as starting in arrays 0-1, which
// start in memory mode (no switch), and the add reads it memory -> buffer
// from there instead of from DRAM. Everything else starts at array 2: l1.w's
// 5 arrays (2-6), segment 0's activations buffer right after them (7, the
// only array switched to memory and back), and segment 1's streamed l2.w
// (2 row tiles x 8 column tiles = 16 arrays) in chunks of at most the 6
// arrays 2-7 (3 + 3 + 2 column tiles, as its allocation says: 3 chunks).
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @kv_cache(%x: tensor<1x32xf32>, %past: tensor<1x40xf32>) -> tensor<1x64xf32> {
    cim_tile.memory_buffer kv_cache arrays 2 bytes 512 segment 0 holds ["past"] mode <memory>
    cim_tile.memory_buffer activations arrays 1 bytes 256 segment 0 mode <memory>
    %h = cim_tile.mvm %x weight "l1.w" layout kn tiling <k = 32, n = 40, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 5, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<1x32xf32> -> tensor<1x40xf32>
    %s = cim_tile.vector segment 0 (%h, %past) : (tensor<1x40xf32>, tensor<1x40xf32>) -> tensor<1x40xf32> {
    ^bb0(%0: tensor<1x40xf32>, %1: tensor<1x40xf32>):
      %2 = cim_graph.binary add %0, %1 : (tensor<1x40xf32>, tensor<1x40xf32>) -> tensor<1x40xf32>
      cim_tile.yield %2 : tensor<1x40xf32>
    }
    %y = cim_tile.mvm %s weight "l2.w" layout kn tiling <k = 40, n = 64, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 2, col_tiles = 8, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 3> mode <compute> : tensor<1x40xf32> -> tensor<1x64xf32>
    func.return %y : tensor<1x64xf32>
  }
}

// CHECK:      cim_meta.schedule @kv_cache target "tiny" strategy "static" batch 1 inputs ["input0", "input1"] outputs ["y"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x32xf32> bytes 32{{$}}
// CHECK-NEXT:   cim_meta.tensor "input1" : tensor<1x40xf32> bytes 40 arrays <0:2>
// CHECK-NOT:    cim_meta.switch arrays <0:
// CHECK:        %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[SW:[0-9]+]] = cim_meta.switch arrays <7:8> to <memory> segment 0 after(%[[S0]])
// CHECK-NEXT:   %[[LW1:[0-9]+]] = cim_meta.load "l1.w" 1280 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:   %[[PW1:[0-9]+]] = cim_meta.program "l1.w" arrays <2:7> rows 32 cols 32 k [0, 32] n [0, 40] segment 0 label "l1.w" after(%[[LW1]])
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 32 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:   %[[MX:[0-9]+]] = cim_meta.move "input0" 32 bytes in cores <0:2> segment 0 label "l1.w" after(%[[LX]])
// CHECK-NEXT:   %[[M1:[0-9]+]] = cim_meta.mvm "l1.w" arrays <2:7> {{.*}} after(%[[MX]], %[[PW1]])
// CHECK-NEXT:   %[[G1:[0-9]+]] = cim_meta.move "h" 40 bytes out cores <0:2> segment 0 label "l1.w" after(%[[M1]])
// CHECK-NEXT:   %[[LP:[0-9]+]] = cim_meta.load "input1" 40 bytes memory -> buffer arrays <0:2> segment 0 label "add" after(%[[S0]])
// CHECK-NEXT:   %[[ADD:[0-9]+]] = cim_meta.vector "add" element_ops 40 inputs ["h", "input1"] outputs ["s"] {{.*}} after(%[[G1]], %[[LP]])
// CHECK-NEXT:   %[[S1:[0-9]+]] = cim_meta.segment 1 after(%[[SW]], %[[ADD]])
// CHECK-NEXT:   %[[BACK:[0-9]+]] = cim_meta.switch arrays <7:8> to <compute> segment 1 after(%[[S1]])
// CHECK-NEXT:   cim_meta.move "s" 40 bytes in segment 1
// CHECK-NEXT:   cim_meta.load "l2.w" 960 bytes dram -> buffer segment 1
// CHECK-NEXT:   cim_meta.program "l2.w" arrays <2:8> rows 32 cols 32 k [0, 40] n [0, 24] segment 1 label "l2.w" after(%{{[0-9]+}}, %[[BACK]])
// CHECK-NEXT:   cim_meta.mvm "l2.w" arrays <2:8> {{.*}} n [0, 24]
// CHECK-NEXT:   cim_meta.load "l2.w" 960 bytes dram -> buffer segment 1
// CHECK-NEXT:   cim_meta.program "l2.w" arrays <2:8> {{.*}} n [24, 48]
// CHECK-NEXT:   cim_meta.mvm "l2.w" arrays <2:8> {{.*}} n [24, 48]
// CHECK-NEXT:   cim_meta.load "l2.w" 640 bytes dram -> buffer segment 1
// CHECK-NEXT:   cim_meta.program "l2.w" arrays <2:6> {{.*}} n [48, 64]
// CHECK-NEXT:   cim_meta.mvm "l2.w" arrays <2:6> {{.*}} n [48, 64]
// CHECK-NOT:    cim_meta.switch
// CHECK:        cim_meta.store "y" 64 bytes buffer -> dram segment 1 label "output0"
// CHECK-NEXT: }
