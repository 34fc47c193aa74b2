// RUN: cim-opt %s --split-input-file -p 'convert-tile-to-meta{target=tiny}' | filecheck %s

// convert-tile-to-meta on hand-written, already allocated cim_tile IR for the
// `tiny` target (8 arrays of 32 x 32, 4 bit slices, 1-byte activations and
// weights, 4-byte accumulators, 2 vector units, a 4096-byte global buffer).

// Two segments. Each segment starts with a barrier on everything before it,
// then loads and programs the weights resident in it, giving out arrays from
// array 0 again. The model input is loaded from DRAM, moved to the arrays and
// multiplied; l2.w has 2 row tiles, so its 24 outputs come back as 4-byte
// partial sums (96 bytes) and are added on the vector units (24 adds).
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
// CHECK-NEXT:   cim_meta.tensor "a" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x40xf32> bytes 40
// CHECK-NEXT:   cim_meta.tensor "b" : tensor<1x24xf32> bytes 24
// CHECK-NEXT:   %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LW1:[0-9]+]] = cim_meta.load "l1.w" 1280 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:   %[[PW1:[0-9]+]] = cim_meta.program "l1.w" arrays <0:5> rows 32 cols 32 k [0, 32] n [0, 40] segment 0 label "l1.w" after(%[[LW1]])
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 32 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:   %[[MX:[0-9]+]] = cim_meta.move "input0" 32 bytes segment 0 label "l1.w" after(%[[LX]])
// CHECK-NEXT:   %[[M1:[0-9]+]] = cim_meta.mvm "l1.w" arrays <0:5> vectors 1 rows 32 cols 32 k [0, 32] n [0, 40] v [0, 1] input "input0" output "a" segment 0 label "l1.w" after(%[[MX]], %[[PW1]])
// CHECK-NEXT:   %[[G1:[0-9]+]] = cim_meta.move "a" 40 bytes segment 0 label "l1.w" after(%[[M1]])
// CHECK-NEXT:   %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 40 units 2 inputs ["a"] output "r" segment 0 label "relu" after(%[[G1]])
// CHECK-NEXT:   %[[S1:[0-9]+]] = cim_meta.segment 1 after(%[[RELU]])
// CHECK-NEXT:   %[[LW2:[0-9]+]] = cim_meta.load "l2.w" 960 bytes dram -> buffer segment 1 label "l2.w" after(%[[S1]])
// CHECK-NEXT:   %[[PW2:[0-9]+]] = cim_meta.program "l2.w" arrays <0:6> rows 32 cols 32 k [0, 40] n [0, 24] segment 1 label "l2.w" after(%[[LW2]])
// CHECK-NEXT:   %[[MR:[0-9]+]] = cim_meta.move "r" 40 bytes segment 1 label "l2.w" after(%[[RELU]])
// CHECK-NEXT:   %[[M2:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:6> vectors 1 rows 32 cols 32 k [0, 40] n [0, 24] v [0, 1] input "r" output "b" segment 1 label "l2.w" after(%[[MR]], %[[PW2]])
// CHECK-NEXT:   %[[G2:[0-9]+]] = cim_meta.move "b" 192 bytes segment 1 label "l2.w" after(%[[M2]])
// CHECK-NEXT:   %[[ACC:[0-9]+]] = cim_meta.vector "accumulate" element_ops 24 units 2 inputs ["b"] output "b" segment 1 label "l2.w" after(%[[G2]])
// CHECK-NEXT:   cim_meta.store "b" 24 bytes buffer -> dram segment 1 label "output0" after(%[[ACC]])
// CHECK-NEXT: }

// -----

// Two copies of a weight (set by hand): each copy gets its own arrays and
// program, and the 4 input vectors are split between them in one parallel
// group. The batch is the first input's leading dimension.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @copies(%x: tensor<4x32xf32>) -> tensor<4x8xf32> {
    %y = cim_tile.mvm %x weight "w" layout kn tiling <k = 32, n = 8, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 1, groups_per_array = 1> alloc <segment = 0, copies = 2, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x8xf32>
    func.return %y : tensor<4x8xf32>
  }
}

// CHECK:      cim_meta.schedule @copies target "tiny" strategy "static" batch 4 inputs ["input0"] outputs ["y"] {
// CHECK:        %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LW:[0-9]+]] = cim_meta.load "w" 256 bytes dram -> buffer segment 0 label "w" after(%[[S0]])
// CHECK-NEXT:   %[[P0:[0-9]+]] = cim_meta.program "w" arrays <0:1> rows 32 cols 32 k [0, 32] n [0, 8] segment 0 label "w" after(%[[LW]])
// CHECK-NEXT:   %[[P1:[0-9]+]] = cim_meta.program "w" arrays <1:2> rows 32 cols 32 k [0, 32] n [0, 8] segment 0 label "w" after(%[[LW]])
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 128 bytes dram -> buffer segment 0 label "w" after(%[[S0]])
// CHECK-NEXT:   %[[MX:[0-9]+]] = cim_meta.move "input0" 128 bytes segment 0 label "w" after(%[[LX]])
// CHECK-NEXT:   %[[PAR:[0-9]+]] = cim_meta.parallel segment 0 label "w" {
// CHECK-NEXT:     cim_meta.mvm "w" arrays <0:1> vectors 2 rows 32 cols 32 k [0, 32] n [0, 8] v [0, 2] input "input0" output "y" segment 0 label "w" after(%[[MX]], %[[P0]])
// CHECK-NEXT:     cim_meta.mvm "w" arrays <1:2> vectors 2 rows 32 cols 32 k [0, 32] n [0, 8] v [2, 4] input "input0" output "y" segment 0 label "w" after(%[[MX]], %[[P1]])
// CHECK-NEXT:   }
// CHECK-NEXT:   %[[G:[0-9]+]] = cim_meta.move "y" 32 bytes segment 0 label "w" after(%[[PAR]])
// CHECK-NEXT:   cim_meta.store "y" 32 bytes buffer -> dram segment 0 label "output0" after(%[[G]])

// -----

// A weight streamed in chunks: 256 x 256 on 8 arrays (8 row tiles x 32 column
// tiles). Each chunk is all 8 row tiles of one column tile (8 outputs): load
// 256 x 8 = 2048 bytes, program arrays 0..7, multiply. The next chunk's load
// and program wait for the previous chunk's MVM (they reuse the arrays). The
// 256 outputs come back as 8 row tiles of 4-byte partial sums (8192 bytes)
// and are added:
// 256 x 7 = 1792 adds.
builtin.module attributes {cim_tile.strategy = "static"} {
  func.func @chunked(%h: tensor<1x256xf32>) -> tensor<1x256xf32> {
    %y = cim_tile.mvm %h weight "big.w" layout kn tiling <k = 256, n = 256, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 8, col_tiles = 32, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 32> mode <compute> : tensor<1x256xf32> -> tensor<1x256xf32>
    func.return %y : tensor<1x256xf32>
  }
}

// CHECK:      cim_meta.schedule @chunked
// CHECK:        %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 256 bytes dram -> buffer segment 0 label "big.w" after(%[[S0]])
// CHECK-NEXT:   %[[MX:[0-9]+]] = cim_meta.move "input0" 256 bytes segment 0 label "big.w" after(%[[LX]])
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
// CHECK-NEXT:   %[[G:[0-9]+]] = cim_meta.move "y" 8192 bytes segment 0 label "big.w" after(%[[ML]])
// CHECK-NEXT:   %[[ACC:[0-9]+]] = cim_meta.vector "accumulate" element_ops 1792 units 2 inputs ["y"] output "y" segment 0 label "big.w" after(%[[G]])
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
// CHECK-NEXT:   %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 3072 units 2 inputs ["input0"] output "r" segment 0 label "relu" after(%[[LX]])
// CHECK-NEXT:   %[[SR:[0-9]+]] = cim_meta.store "r" 3072 bytes buffer -> dram segment 0 label "relu" after(%[[RELU]])
// CHECK-NEXT:   %[[LR1:[0-9]+]] = cim_meta.load "r" 3072 bytes dram -> buffer segment 0 label "sigmoid" after(%[[SR]])
// CHECK-NEXT:   %[[SIG:[0-9]+]] = cim_meta.vector "sigmoid" element_ops 12288 units 2 inputs ["r"] output "s" segment 0 label "sigmoid" after(%[[LR1]])
// CHECK-NEXT:   %[[SS:[0-9]+]] = cim_meta.store "s" 3072 bytes buffer -> dram segment 0 label "sigmoid" after(%[[SIG]])
// CHECK-NEXT:   %[[LR2:[0-9]+]] = cim_meta.load "r" 3072 bytes dram -> buffer segment 0 label "add" after(%[[SR]])
// CHECK-NEXT:   %[[LS:[0-9]+]] = cim_meta.load "s" 3072 bytes dram -> buffer segment 0 label "add" after(%[[SS]])
// CHECK-NEXT:   %[[ADD:[0-9]+]] = cim_meta.vector "add" element_ops 3072 units 2 inputs ["r", "s"] output "t" segment 0 label "add" after(%[[LR2]], %[[LS]])
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
// CHECK:        %[[R:[0-9]+]] = cim_meta.vector "relu" {{.*}} output "r"
// CHECK-NEXT:   %[[S:[0-9]+]] = cim_meta.vector "relu" {{.*}} inputs ["r"] output "s" segment 0 label "relu" after(%[[R]])
// CHECK-NEXT:   cim_meta.store "s" 2048 bytes buffer -> dram segment 0 label "output0" after(%[[S]])
// CHECK-NEXT: }

// -----

// Weights of vector work (the layer-norm scale and bias, 32 one-byte values
// each) are loaded from DRAM after the segment barrier; layer norm costs 8
// lane operations per output element (4 x 32 x 8 = 1024).
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
// CHECK:        %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[LX:[0-9]+]] = cim_meta.load "input0" 128 bytes dram -> buffer segment 0 label "layer_norm" after(%[[S0]])
// CHECK-NEXT:   %[[LG:[0-9]+]] = cim_meta.load "ln.g" 32 bytes dram -> buffer segment 0 label "layer_norm" after(%[[S0]])
// CHECK-NEXT:   %[[LB:[0-9]+]] = cim_meta.load "ln.b" 32 bytes dram -> buffer segment 0 label "layer_norm" after(%[[S0]])
// CHECK-NEXT:   %[[LN:[0-9]+]] = cim_meta.vector "layer_norm" element_ops 1024 units 2 inputs ["input0", "ln.g", "ln.b"] output "y" segment 0 label "layer_norm" after(%[[LX]], %[[LG]], %[[LB]])
// CHECK-NEXT:   cim_meta.store "y" 128 bytes buffer -> dram segment 0 label "output0" after(%[[LN]])
