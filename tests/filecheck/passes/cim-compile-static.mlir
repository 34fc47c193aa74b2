// RUN: cim-opt %s --split-input-file -p 'cim-compile-static{target=tiny}' | filecheck %s

// The cim-compile-static preset (convert-graph-to-tile, cim-static-allocate,
// convert-tile-to-meta) from cim_graph to a cim_meta schedule, on `tiny`
// (8 arrays of 32 x 32, 8 outputs per array, 4096-byte global buffer).

// A small CNN that fits in one segment: conv.w (k = 27, n = 16: 1 x 2 tiles)
// on arrays 0-1, fc.w (k = 16, n = 10: 1 x 2 tiles) on arrays 2-3. The conv
// bias is added on the vector units (64 vectors x 16 outputs = 1024 adds; one
// row tile, so no partial sums and a 1-byte-per-output gather). Every
// cim_graph / cim_tile op is gone.
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

// CHECK:       builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx">, cim_tile.strategy = "static"} {
// CHECK-NEXT:    cim_meta.schedule @cnn target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["l"] {
// CHECK-NOT:       cim_graph.
// CHECK-NOT:       cim_tile.
// CHECK-NOT:       func.func
// CHECK:           %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:      %[[LC:[0-9]+]] = cim_meta.load "conv.w" 432 bytes dram -> buffer segment 0 label "conv.w" after(%[[S0]])
// CHECK-NEXT:      %[[PC:[0-9]+]] = cim_meta.program "conv.w" arrays <0:2> rows 27 cols 32 k [0, 27] n [0, 16] segment 0 label "conv.w" after(%[[LC]])
// CHECK-NEXT:      %[[LF:[0-9]+]] = cim_meta.load "fc.w" 160 bytes dram -> buffer segment 0 label "fc.w" after(%[[S0]])
// CHECK-NEXT:      %[[PF:[0-9]+]] = cim_meta.program "fc.w" arrays <2:4> rows 16 cols 32 k [0, 16] n [0, 10] segment 0 label "fc.w" after(%[[LF]])
// CHECK-NEXT:      %[[LX:[0-9]+]] = cim_meta.load "input0" 192 bytes dram -> buffer segment 0 label "im2col" after(%[[S0]])
// CHECK-NEXT:      %[[IC:[0-9]+]] = cim_meta.vector "im2col" element_ops 1728 units 2 inputs ["input0"] output "y" segment 0 label "im2col" after(%[[LX]])
// CHECK-NEXT:      %[[MV:[0-9]+]] = cim_meta.move "y" 1728 bytes segment 0 label "conv.w" after(%[[IC]])
// CHECK-NEXT:      %[[MC:[0-9]+]] = cim_meta.mvm "conv.w" arrays <0:2> vectors 64 rows 27 cols 32 k [0, 27] n [0, 16] v [0, 64] input "y" output "y.1" segment 0 label "conv.w" after(%[[MV]], %[[PC]])
// CHECK-NEXT:      %[[GC:[0-9]+]] = cim_meta.move "y.1" 1024 bytes segment 0 label "conv.w" after(%[[MC]])
// CHECK-NEXT:      %[[LB:[0-9]+]] = cim_meta.load "conv.b" 16 bytes dram -> buffer segment 0 label "conv.b" after(%[[S0]])
// CHECK-NEXT:      %[[BIAS:[0-9]+]] = cim_meta.vector "accumulate" element_ops 1024 units 2 inputs ["y.1", "conv.b"] output "y.1" segment 0 label "conv.w" after(%[[GC]], %[[LB]])
// CHECK-NEXT:      %[[CI:[0-9]+]] = cim_meta.vector "col2im" element_ops 1024 units 2 inputs ["y.1"] output "y.2" segment 0 label "col2im" after(%[[BIAS]])
// CHECK-NEXT:      %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 1024 units 2 inputs ["y.2"] output "z" segment 0 label "relu" after(%[[CI]])
// CHECK-NEXT:      %[[POOL:[0-9]+]] = cim_meta.vector "global_pool" element_ops 1024 units 2 inputs ["z"] output "g" segment 0 label "global_pool" after(%[[RELU]])
// CHECK-NEXT:      %[[RS:[0-9]+]] = cim_meta.vector "reshape" element_ops 0 units 2 inputs ["g"] output "r" segment 0 label "reshape" after(%[[POOL]])
// CHECK-NEXT:      %[[MR:[0-9]+]] = cim_meta.move "r" 16 bytes segment 0 label "fc.w" after(%[[RS]])
// CHECK-NEXT:      %[[MF:[0-9]+]] = cim_meta.mvm "fc.w" arrays <2:4> vectors 1 rows 16 cols 32 k [0, 16] n [0, 10] v [0, 1] input "r" output "l" segment 0 label "fc.w" after(%[[MR]], %[[PF]])
// CHECK-NEXT:      %[[GF:[0-9]+]] = cim_meta.move "l" 10 bytes segment 0 label "fc.w" after(%[[MF]])
// CHECK-NEXT:      cim_meta.store "l" 10 bytes buffer -> dram segment 0 label "output0" after(%[[GF]])
// CHECK-NEXT:    }
// CHECK-NEXT:  }

// -----

// An MLP over three segments. l1.w (Gemm with transB, bias; 1 x 5 tiles)
// fills segment 0. l2.w (k = 40, n = 256: 2 x 32 = 64 arrays) exceeds the chip
// and streams in segment 1: 8 chunks of 2 row tiles x 4 column tiles (32
// outputs, 40 x 32 = 1280 bytes each). l3.w (k = 256: 8 row tiles x 1) takes
// all 8 arrays in segment 2. Each segment barrier waits for the previous
// segment's last op.
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
// CHECK:           %[[S0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:      cim_meta.load "l1.w" 1280 bytes dram -> buffer segment 0 label "l1.w" after(%[[S0]])
// CHECK-NEXT:      cim_meta.program "l1.w" arrays <0:5> rows 32 cols 32 k [0, 32] n [0, 40] segment 0
// CHECK:           cim_meta.mvm "l1.w" arrays <0:5> vectors 2 {{.*}} v [0, 2] input "input0" output "y1" segment 0
// CHECK:           cim_meta.vector "accumulate" element_ops 80 units 2 inputs ["y1", "l1.b"] output "y1" segment 0
// CHECK-NEXT:      %[[RELU:[0-9]+]] = cim_meta.vector "relu" element_ops 80 {{.*}} segment 0
// CHECK-NEXT:      %[[S1:[0-9]+]] = cim_meta.segment 1 after(%[[RELU]])
// CHECK-NOT:       cim_meta.segment
// CHECK-COUNT-8:   cim_meta.load "l2.w" 1280 bytes dram -> buffer segment 1
// CHECK-NOT:       cim_meta.segment
// CHECK:           cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [224, 256] v [0, 2] input "r1" output "y2" segment 1
// CHECK-NEXT:      cim_meta.move "y2" 4096 bytes segment 1
// CHECK-NEXT:      %[[ACC2:[0-9]+]] = cim_meta.vector "accumulate" element_ops 512 units 2 inputs ["y2"] output "y2" segment 1
// CHECK-NEXT:      %[[S2:[0-9]+]] = cim_meta.segment 2 after(%[[ACC2]])
// CHECK-NEXT:      %[[L3:[0-9]+]] = cim_meta.load "l3.w" 2048 bytes dram -> buffer segment 2 label "l3.w" after(%[[S2]])
// CHECK-NEXT:      %[[P3:[0-9]+]] = cim_meta.program "l3.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [0, 8] segment 2 label "l3.w" after(%[[L3]])
// CHECK-NEXT:      %[[M:[0-9]+]] = cim_meta.move "y2" 512 bytes segment 2 label "l3.w" after(%[[ACC2]])
// CHECK-NEXT:      %[[MVM:[0-9]+]] = cim_meta.mvm "l3.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 256] n [0, 8] v [0, 2] input "y2" output "y3" segment 2 label "l3.w" after(%[[M]], %[[P3]])
// CHECK-NEXT:      %[[G:[0-9]+]] = cim_meta.move "y3" 512 bytes segment 2 label "l3.w" after(%[[MVM]])
// CHECK-NEXT:      %[[ACC3:[0-9]+]] = cim_meta.vector "accumulate" element_ops 112 units 2 inputs ["y3"] output "y3" segment 2 label "l3.w" after(%[[G]])
// CHECK-NEXT:      cim_meta.store "y3" 16 bytes buffer -> dram segment 2 label "output0" after(%[[ACC3]])
// CHECK-NEXT:    }
