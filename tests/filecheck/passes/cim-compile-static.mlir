// RUN: cim-opt %s --split-input-file -p 'cim-compile-static{target=tiny}' | filecheck %s

// The cim-compile-static preset (convert-graph-to-tile, cim-static-allocate,
// convert-tile-to-meta) from cim_graph to a cim_meta schedule, on `tiny`
// (8 arrays of 32 x 32, 8 outputs per array, 4096-byte global buffer).

// A small CNN that fits in one segment: conv.w (k = 27, n = 16: 1 x 2 tiles)
// on arrays 0-1, fc.w (k = 16, n = 10: 1 x 2 tiles) on arrays 2-3. The conv
// bias is added on the vector units (64 vectors x 16 outputs = 1024 adds; one
// row tile, so no partial sums and a 1-byte-per-output gather). The schedule
// declares both weights with their MVMs' tilings (conv.w: OIHW [16, 3, 3, 3]
// is k = 3 x 3 x 3 = 27 by n = 16; fc.w: Gemm transB [10, 16] is nk, k = 16,
// n = 10) among the tensors, in lowering order. The vector ops carry their
// operators' parameters (im2col's window, relu's and global_pool's kinds).
// Every cim_graph / cim_tile op is gone (the module is checked line by line).
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx">} {
  func.func @cnn(%x: tensor<1x3x8x8xf32>) -> tensor<1x10xf32> {
    %w = cim_graph.weight "conv.w" : tensor<16x3x3x3xf32>
    %b = cim_graph.weight "conv.b" : tensor<16xf32>
    %y = cim_graph.conv %x, %w, %b strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<16x3x3x3xf32>, tensor<16xf32>) -> tensor<1x16x8x8xf32>
    %z = cim_graph.unary relu %y : tensor<1x16x8x8xf32> -> tensor<1x16x8x8xf32>
    %g = cim_graph.global_pool avg %z : tensor<1x16x8x8xf32> -> tensor<1x16x1x1xf32>
    %r = cim_graph.reshape %g : tensor<1x16x1x1xf32> -> tensor<1x16xf32>
    %lw = cim_graph.weight "fc.w" : tensor<10x16xf32>
    %l = cim_graph.linear %r, %lw transpose_weight : (tensor<1x16xf32>, tensor<10x16xf32>) -> tensor<1x10xf32>
    func.return %l : tensor<1x10xf32>
  }
}

// CHECK:       builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx">, cim_tile.target = {spec = "tiny", name = "tiny", hash = "sha256:{{[0-9a-f]+}}"}, cim_tile.strategy = "static"} {
// CHECK-NEXT:    cim_meta.schedule @cnn target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["l"] {
// CHECK-NEXT:      cim_meta.tensor "input0" : tensor<1x3x8x8xf32> bytes 192
// CHECK-NEXT:      cim_meta.tensor "y" : tensor<64x27xf32> bytes 1728
// CHECK-NEXT:      cim_meta.weight "conv.w" layout oihw groups 1 k 27 n 16
// CHECK-NEXT:      cim_meta.tensor "y.1" : tensor<64x16xf32> bytes 1024
// CHECK-NEXT:      cim_meta.tensor "y.2" : tensor<1x16x8x8xf32> bytes 1024
// CHECK-NEXT:      cim_meta.tensor "z" : tensor<1x16x8x8xf32> bytes 1024
// CHECK-NEXT:      cim_meta.tensor "g" : tensor<1x16x1x1xf32> bytes 16
// CHECK-NEXT:      cim_meta.tensor "r" : tensor<1x16xf32> bytes 16
// CHECK-NEXT:      cim_meta.weight "fc.w" layout nk groups 1 k 16 n 10
// CHECK-NEXT:      cim_meta.tensor "l" : tensor<1x10xf32> bytes 10
// CHECK-NEXT:      %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:      %[[LC:[0-9]+]] = cim_meta.load "conv.w" 432 bytes dram -> buffer segment 0 label "conv.w" after(%[[S0]])
// CHECK-NEXT:      %[[PC:[0-9]+]] = cim_meta.program "conv.w" arrays <0:2> rows 27 cols 32 k [0, 27] n [0, 16] segment 0 label "conv.w" after(%[[LC]])
// CHECK-NEXT:      %[[LF:[0-9]+]] = cim_meta.load "fc.w" 160 bytes dram -> buffer segment 0 label "fc.w" after(%[[S0]])
// CHECK-NEXT:      %[[PF:[0-9]+]] = cim_meta.program "fc.w" arrays <2:4> rows 16 cols 32 k [0, 16] n [0, 10] segment 0 label "fc.w" after(%[[LF]])
// CHECK-NEXT:      %[[LX:[0-9]+]] = cim_meta.load "input0" 192 bytes dram -> buffer segment 0 label "im2col" after(%[[S0]])
// CHECK-NEXT:      %[[IC:[0-9]+]] = cim_meta.vector "im2col" element_ops 1728 inputs ["input0"] outputs ["y"] attrs {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} segment 0 label "im2col" after(%[[LX]])
// CHECK-NEXT:      %[[MV:[0-9]+]] = cim_meta.move "y" 1728 bytes in cores <0:1> segment 0 label "conv.w" after(%[[IC]])
// CHECK-NEXT:      %[[MC:[0-9]+]] = cim_meta.mvm "conv.w" arrays <0:2> vectors 64 rows 27 cols 32 k [0, 27] n [0, 16] v [0, 64] input "y" output "y.1" segment 0 label "conv.w" after(%[[MV]], %[[PC]])
// CHECK-NEXT:      %[[GC:[0-9]+]] = cim_meta.move "y.1" 1024 bytes out cores <0:1> segment 0 label "conv.w" after(%[[MC]])
// CHECK-NEXT:      %[[LB:[0-9]+]] = cim_meta.load "conv.b" 16 bytes dram -> buffer segment 0 label "conv.b" after(%[[S0]])
// CHECK-NEXT:      %[[BIAS:[0-9]+]] = cim_meta.vector "accumulate" element_ops 1024 inputs ["y.1", "conv.b"] outputs ["y.1"] attrs {} segment 0 label "conv.w" after(%[[GC]], %[[LB]])
// CHECK-NEXT:      %[[CI:[0-9]+]] = cim_meta.vector "col2im" element_ops 1024 inputs ["y.1"] outputs ["y.2"] attrs {} segment 0 label "col2im" after(%[[BIAS]])
// CHECK-NEXT:      %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 1024 inputs ["y.2"] outputs ["z"] attrs {kind = #cim_graph<unary_kind relu>} segment 0 label "relu" after(%[[CI]])
// CHECK-NEXT:      %[[POOL:[0-9]+]] = cim_meta.vector "global_pool" element_ops 1024 inputs ["z"] outputs ["g"] attrs {kind = #cim_graph<pool_kind avg>} segment 0 label "global_pool" after(%[[RELU]])
// CHECK-NEXT:      %[[RS:[0-9]+]] = cim_meta.vector "reshape" element_ops 0 inputs ["g"] outputs ["r"] attrs {} segment 0 label "reshape" after(%[[POOL]])
// CHECK-NEXT:      %[[MR:[0-9]+]] = cim_meta.move "r" 16 bytes in cores <0:1> segment 0 label "fc.w" after(%[[RS]])
// CHECK-NEXT:      %[[MF:[0-9]+]] = cim_meta.mvm "fc.w" arrays <2:4> vectors 1 rows 16 cols 32 k [0, 16] n [0, 10] v [0, 1] input "r" output "l" segment 0 label "fc.w" after(%[[MR]], %[[PF]])
// CHECK-NEXT:      %[[GF:[0-9]+]] = cim_meta.move "l" 10 bytes out cores <0:1> segment 0 label "fc.w" after(%[[MF]])
// CHECK-NEXT:      cim_meta.store "l" 10 bytes buffer -> dram segment 0 label "output0" after(%[[GF]])
// CHECK-NEXT:    }
// CHECK-NEXT:  }

// -----

// An MLP over three segments. l1.w (Gemm with transB, bias; 1 x 5 tiles)
// fills segment 0. l2.w (k = 40, n = 256: 2 x 32 = 64 arrays) exceeds the chip
// and streams in segment 1: 8 chunks of 2 row tiles x 4 column tiles (32
// outputs, 40 x 32 = 1280 bytes each). l3.w (k = 256: 8 row tiles x 1) takes
// all 8 arrays in segment 2. Each segment barrier waits for the previous
// segment's last op. All three weights are declared up front, the streamed
// l2.w included (kn, k = 40, n = 256: MatMul's [K, N] operand).
builtin.module {
  func.func @mlp(%x: tensor<2x32xf32>) -> tensor<2x8xf32> {
    %w1 = cim_graph.weight "l1.w" : tensor<40x32xf32>
    %b1 = cim_graph.weight "l1.b" : tensor<40xf32>
    %y1 = cim_graph.linear %x, %w1, %b1 transpose_weight : (tensor<2x32xf32>, tensor<40x32xf32>, tensor<40xf32>) -> tensor<2x40xf32>
    %r1 = cim_graph.unary relu %y1 : tensor<2x40xf32> -> tensor<2x40xf32>
    %w2 = cim_graph.weight "l2.w" : tensor<40x256xf32>
    %y2 = cim_graph.linear %r1, %w2 : (tensor<2x40xf32>, tensor<40x256xf32>) -> tensor<2x256xf32>
    %w3 = cim_graph.weight "l3.w" : tensor<256x8xf32>
    %y3 = cim_graph.linear %y2, %w3 : (tensor<2x256xf32>, tensor<256x8xf32>) -> tensor<2x8xf32>
    func.return %y3 : tensor<2x8xf32>
  }
}

// CHECK:         cim_meta.schedule @mlp target "tiny" strategy "static" batch 2 inputs ["input0"] outputs ["y3"] {
// CHECK-NEXT:      cim_meta.tensor "input0" : tensor<2x32xf32> bytes 64
// CHECK-NEXT:      cim_meta.weight "l1.w" layout nk groups 1 k 32 n 40
// CHECK-NEXT:      cim_meta.tensor "y1" : tensor<2x40xf32> bytes 80
// CHECK-NEXT:      cim_meta.tensor "r1" : tensor<2x40xf32> bytes 80
// CHECK-NEXT:      cim_meta.weight "l2.w" layout kn groups 1 k 40 n 256
// CHECK-NEXT:      cim_meta.tensor "y2" : tensor<2x256xf32> bytes 512
// CHECK-NEXT:      cim_meta.weight "l3.w" layout kn groups 1 k 256 n 8
// CHECK-NEXT:      cim_meta.tensor "y3" : tensor<2x8xf32> bytes 16
// CHECK-NEXT:      %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:      cim_meta.load "l1.w" 1280 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:      cim_meta.program "l1.w" arrays <0:5> rows 32 cols 32 k [0, 32] n [0, 40] segment 0
// CHECK:           cim_meta.mvm "l1.w" arrays <0:5> vectors 2 {{.*}} v [0, 2] input "input0" output "y1" segment 0
// CHECK:           cim_meta.vector "accumulate" element_ops 80 inputs ["y1", "l1.b"] outputs ["y1"] attrs {} segment 0
// CHECK-NEXT:      %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 80 inputs ["y1"] outputs ["r1"] attrs {kind = #cim_graph<unary_kind relu>} segment 0
// CHECK-NEXT:      %[[S1:[0-9]+]] = cim_meta.segment 1 after(%[[RELU]])
// CHECK-NOT:       cim_meta.segment
// CHECK-COUNT-8:   cim_meta.load "l2.w" 1280 bytes dram -> buffer segment 1
// CHECK-NOT:       cim_meta.segment
// CHECK:           cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [224, 256] v [0, 2] input "r1" output "y2" segment 1
// CHECK-NEXT:      cim_meta.move "y2" 4096 bytes out segment 1
// CHECK-NEXT:      %[[ACC2:[0-9]+]] = cim_meta.vector "accumulate" element_ops 512 inputs ["y2"] outputs ["y2"] attrs {} segment 1
// CHECK-NEXT:      %[[S2:[0-9]+]] = cim_meta.segment 2 after(%[[ACC2]])
// CHECK-NEXT:      %[[L3:[0-9]+]] = cim_meta.load "l3.w" 2048 bytes dram -> buffer segment 2 label "l3.w" after(%[[S2]])
// CHECK-NEXT:      %[[P3:[0-9]+]] = cim_meta.program "l3.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [0, 8] segment 2 label "l3.w" after(%[[L3]])
// CHECK-NEXT:      %[[M:[0-9]+]] = cim_meta.move "y2" 512 bytes in cores <0:2> segment 2 label "l3.w" after(%[[ACC2]])
// CHECK-NEXT:      %[[MVM:[0-9]+]] = cim_meta.mvm "l3.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 256] n [0, 8] v [0, 2] input "y2" output "y3" segment 2 label "l3.w" after(%[[M]], %[[P3]])
// CHECK-NEXT:      %[[G:[0-9]+]] = cim_meta.move "y3" 512 bytes out cores <0:2> segment 2 label "l3.w" after(%[[MVM]])
// CHECK-NEXT:      %[[ACC3:[0-9]+]] = cim_meta.vector "accumulate" element_ops 112 inputs ["y3"] outputs ["y3"] attrs {} segment 2 label "l3.w" after(%[[G]])
// CHECK-NEXT:      cim_meta.store "y3" 16 bytes buffer -> dram segment 2 label "output0" after(%[[ACC3]])
// CHECK-NEXT:    }

// -----

// Grouped convolutions declare their weights per group: the depthwise dw.w
// (OIHW [8, 1, 3, 3], groups 8) is 8 blocks of k = 1 x 3 x 3 = 9 by n = 1,
// g.w (OIHW [8, 4, 1, 1], groups 2) 2 blocks of k = 4 by n = 4. The program
// and mvm slices index the block-diagonal [groups*k, groups*n] matrix
// ([72, 8] and [8, 8]); im2col carries the groups.
builtin.module {
  func.func @grouped(%x: tensor<1x8x4x4xf32>) -> tensor<1x8x4x4xf32> {
    %w = cim_graph.weight "dw.w" : tensor<8x1x3x3xf32>
    %y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 8 : (tensor<1x8x4x4xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x4x4xf32>
    %w2 = cim_graph.weight "g.w" : tensor<8x4x1x1xf32>
    %z = cim_graph.conv %y, %w2 strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] groups 2 : (tensor<1x8x4x4xf32>, tensor<8x4x1x1xf32>) -> tensor<1x8x4x4xf32>
    func.return %z : tensor<1x8x4x4xf32>
  }
}

// CHECK:         cim_meta.schedule @grouped target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["z.2"] {
// CHECK-NEXT:      cim_meta.tensor "input0" : tensor<1x8x4x4xf32> bytes 128
// CHECK-NEXT:      cim_meta.tensor "y" : tensor<16x72xf32> bytes 1152
// CHECK-NEXT:      cim_meta.weight "dw.w" layout oihw groups 8 k 9 n 1
// CHECK-NEXT:      cim_meta.tensor "y.1" : tensor<16x8xf32> bytes 128
// CHECK-NEXT:      cim_meta.tensor "y.2" : tensor<1x8x4x4xf32> bytes 128
// CHECK-NEXT:      cim_meta.tensor "z" : tensor<16x8xf32> bytes 128
// CHECK-NEXT:      cim_meta.weight "g.w" layout oihw groups 2 k 4 n 4
// CHECK-NEXT:      cim_meta.tensor "z.1" : tensor<16x8xf32> bytes 128
// CHECK-NEXT:      cim_meta.tensor "z.2" : tensor<1x8x4x4xf32> bytes 128
// CHECK-NEXT:      %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:      cim_meta.load "dw.w" 72 bytes dram -> buffer segment 0 label "dw.w" after(%[[S0]])
// CHECK-NEXT:      cim_meta.program "dw.w" arrays <0:3> rows 27 cols 12 k [0, 72] n [0, 8] segment 0
// CHECK-NEXT:      cim_meta.load "g.w" 32 bytes dram -> buffer segment 0 label "g.w" after(%[[S0]])
// CHECK-NEXT:      cim_meta.program "g.w" arrays <3:4> rows 8 cols 32 k [0, 8] n [0, 8] segment 0
// CHECK-NEXT:      cim_meta.load "input0" 128 bytes dram
// CHECK-NEXT:      cim_meta.vector "im2col" element_ops 1152 inputs ["input0"] outputs ["y"] attrs {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} segment 0
// CHECK-NEXT:      cim_meta.move "y" 1152 bytes in cores <0:1>
// CHECK-NEXT:      cim_meta.mvm "dw.w" arrays <0:3> vectors 16 rows 27 cols 12 k [0, 72] n [0, 8] v [0, 16] input "y" output "y.1" segment 0
// CHECK-NEXT:      cim_meta.move "y.1" 128 bytes out cores <0:1>
// CHECK-NEXT:      cim_meta.vector "col2im" element_ops 128 inputs ["y.1"] outputs ["y.2"] attrs {} segment 0
// CHECK-NEXT:      cim_meta.vector "im2col" element_ops 128 inputs ["y.2"] outputs ["z"] attrs {kernel = array<i64: 1, 1>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 2 : i64} segment 0
// CHECK-NEXT:      cim_meta.move "z" 128 bytes in cores <0:1>
// CHECK-NEXT:      cim_meta.mvm "g.w" arrays <3:4> vectors 16 rows 8 cols 32 k [0, 8] n [0, 8] v [0, 16] input "z" output "z.1" segment 0
