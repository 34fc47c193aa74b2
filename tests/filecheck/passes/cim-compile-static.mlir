// RUN: cim-opt %s --split-input-file -p 'cim-compile-static{target=tiny}' | filecheck %s
// RUN: cim-opt %S/Inputs/tall_linear.mlir -p 'cim-compile-static{target=dynaplasia}' | filecheck %s --check-prefix=BANDED

// The cim-compile-static preset (convert-graph-to-tile, cim-static-allocate,
// convert-tile-to-meta) from cim_graph to a cim_meta schedule, on `tiny`
// (8 arrays of 32 x 32, 8 outputs per array, 4096-byte global buffer).

// A small CNN that fits in one segment: conv.w (k = 27, n = 16: 1 x 2 tiles)
// on arrays 0-1, fc.w (k = 16, n = 10: 1 x 2 tiles) on arrays 2-3, each
// copy programmed straight from DRAM (`feed dram`) in DRAM order. The
// im2col is a view of the image in DRAM (no work, nothing moves); the conv
// runs in 3 pieces that fit the local buffers, each loading only the feature-
// map positions its windows add to those already in the line buffer (90 + 66 + 36
// = 192 bytes, the image once, not its 1728 bytes of patches), and its
// cores' vector units add the bias and apply the relu as the sums leave
// (672 + 704 + 672 = 2 x 1024 lane operations, `then = "relu"`) before the
// 1-byte outputs move out; the relu's result is a view of the convolution's
// output (a `reshape` that costs nothing). The schedule
// declares both weights with their MVMs' tilings (conv.w: OIHW [16, 3, 3, 3]
// is k = 3 x 3 x 3 = 27 by n = 16; fc.w: Gemm transB [10, 16] is nk, k = 16,
// n = 10) among the tensors, in lowering order. The vector ops carry their
// operators' parameters (im2col's window, global_pool's kind).
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

// CHECK:      cim_meta.schedule @cnn target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["l"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x3x8x8xf32> bytes 192
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<64x27xf32> bytes 1728
// CHECK-NEXT:   cim_meta.weight "conv.w" layout oihw groups 1 k 27 n 16
// CHECK-NEXT:   cim_meta.weight "fc.w" layout nk groups 1 k 16 n 10
// CHECK-NEXT:   cim_meta.tensor "y.1" : tensor<64x16xf32> bytes 1024
// CHECK-NEXT:   cim_meta.tensor "y.2" : tensor<1x16x8x8xf32> bytes 1024
// CHECK-NEXT:   cim_meta.tensor "z" : tensor<1x16x8x8xf32> bytes 1024
// CHECK-NEXT:   cim_meta.tensor "g" : tensor<1x16x1x1xf32> bytes 16
// CHECK-NEXT:   cim_meta.tensor "r" : tensor<1x16xf32> bytes 16
// CHECK-NEXT:   cim_meta.tensor "l" : tensor<1x10xf32> bytes 10
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.vector "im2col" element_ops 0 inputs ["input0"] outputs ["y"] attrs {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} cores <0:1> in_from dram out_to dram segment 0 label "im2col" after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.program "conv.w" arrays <0:2> rows 27 cols 32 k [0, 27] n [0, 16] feed dram in_bytes 432 segment 0 label "conv.w" after(%[[V0]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.program "fc.w" arrays <2:4> rows 16 cols 32 k [0, 16] n [0, 10] feed dram in_bytes 160 segment 0 label "fc.w" after(%[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.segment 0 label "allocate y.1" allocs [#cim_meta.alloc<"y.1" 1024 bytes buffer>] after(%[[V1]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.load "conv.b" 16 bytes dram -> buffer segment 0 label "conv.b" allocs [#cim_meta.alloc<"conv.b" 16 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.load "y" 90 bytes dram -> buffer segment 0 label "y" allocs [#cim_meta.alloc<"y[0:21]@in" 90 bytes buffer>] after(%[[V1]], %[[V4]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.move "y" 90 bytes in cores <0:1> segment 0 label "conv.w" allocs [#cim_meta.alloc<"y[0:21]" 426 bytes local cores <0:1>>] after(%[[V1]], %[[V4]], %[[V6]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[0:21]@in" buffer>] segment 0 label "y[0:21]@in" after(%[[V7]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.mvm "conv.w" arrays <0:2> vectors 21 rows 27 cols 32 k [0, 27] n [0, 16] v [0, 21] input "y" output "y.1" local_bytes 567 segment 0 label "conv.w" after(%[[V7]], %[[V2]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.move "conv.b" 16 bytes in cores <0:1> segment 0 label "conv.b@0:1" allocs [#cim_meta.alloc<"conv.b@0:1" 16 bytes local cores <0:1>>] after(%[[V5]])
// CHECK-NEXT:   %[[V11:[0-9]+]] = cim_meta.vector "accumulate" element_ops 672 inputs ["y.1", "conv.b"] outputs ["y.1"] attrs {then = "relu"} block [0, 0, 21] cores <0:1> segment 0 label "y.1" after(%[[V9]], %[[V10]])
// CHECK-NEXT:   %[[V12:[0-9]+]] = cim_meta.move "y.1" 336 bytes out cores <0:1> block [0, 0, 21] segment 0 label "conv.w" after(%[[V11]])
// CHECK-NEXT:   %[[V13:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[0:21]" local cores <0:1>>] segment 0 label "y[0:21]" after(%[[V12]], %[[V9]])
// CHECK-NEXT:   %[[V14:[0-9]+]] = cim_meta.load "y" 66 bytes dram -> buffer segment 0 label "y" allocs [#cim_meta.alloc<"y[21:43]@in" 66 bytes buffer>] after(%[[V1]], %[[V4]])
// CHECK-NEXT:   %[[V15:[0-9]+]] = cim_meta.move "y" 66 bytes in cores <0:1> segment 0 label "conv.w" allocs [#cim_meta.alloc<"y[21:43]" 472 bytes local cores <0:1>>] after(%[[V1]], %[[V4]], %[[V14]])
// CHECK-NEXT:   %[[V16:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[21:43]@in" buffer>] segment 0 label "y[21:43]@in" after(%[[V15]])
// CHECK-NEXT:   %[[V17:[0-9]+]] = cim_meta.mvm "conv.w" arrays <0:2> vectors 22 rows 27 cols 32 k [0, 27] n [0, 16] v [21, 43] input "y" output "y.1" local_bytes 594 segment 0 label "conv.w" after(%[[V15]], %[[V2]])
// CHECK-NEXT:   %[[V18:[0-9]+]] = cim_meta.vector "accumulate" element_ops 704 inputs ["y.1", "conv.b"] outputs ["y.1"] attrs {then = "relu"} block [0, 21, 43] cores <0:1> segment 0 label "y.1" after(%[[V17]], %[[V10]])
// CHECK-NEXT:   %[[V19:[0-9]+]] = cim_meta.move "y.1" 352 bytes out cores <0:1> block [0, 21, 43] segment 0 label "conv.w" after(%[[V18]])
// CHECK-NEXT:   %[[V20:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[21:43]" local cores <0:1>>] segment 0 label "y[21:43]" after(%[[V19]], %[[V17]])
// CHECK-NEXT:   %[[V21:[0-9]+]] = cim_meta.load "y" 36 bytes dram -> buffer segment 0 label "y" allocs [#cim_meta.alloc<"y[43:64]@in" 36 bytes buffer>] after(%[[V1]], %[[V4]])
// CHECK-NEXT:   %[[V22:[0-9]+]] = cim_meta.move "y" 36 bytes in cores <0:1> segment 0 label "conv.w" allocs [#cim_meta.alloc<"y[43:64]" 426 bytes local cores <0:1>>] after(%[[V1]], %[[V4]], %[[V13]], %[[V21]])
// CHECK-NEXT:   %[[V23:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[43:64]@in" buffer>] segment 0 label "y[43:64]@in" after(%[[V22]])
// CHECK-NEXT:   %[[V24:[0-9]+]] = cim_meta.mvm "conv.w" arrays <0:2> vectors 21 rows 27 cols 32 k [0, 27] n [0, 16] v [43, 64] input "y" output "y.1" local_bytes 567 segment 0 label "conv.w" after(%[[V22]], %[[V2]])
// CHECK-NEXT:   %[[V25:[0-9]+]] = cim_meta.vector "accumulate" element_ops 672 inputs ["y.1", "conv.b"] outputs ["y.1"] attrs {then = "relu"} block [0, 43, 64] cores <0:1> segment 0 label "y.1" after(%[[V24]], %[[V10]])
// CHECK-NEXT:   %[[V26:[0-9]+]] = cim_meta.move "y.1" 336 bytes out cores <0:1> block [0, 43, 64] segment 0 label "conv.w" after(%[[V25]])
// CHECK-NEXT:   %[[V27:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[43:64]" local cores <0:1>>] segment 0 label "y[43:64]" after(%[[V26]], %[[V24]])
// CHECK-NEXT:   %[[V28:[0-9]+]] = cim_meta.free [#cim_meta.place<"conv.b@0:1" local cores <0:1>>] segment 0 label "conv.b@0:1" after(%[[V11]], %[[V18]], %[[V25]])
// CHECK-NEXT:   %[[V29:[0-9]+]] = cim_meta.vector "col2im" element_ops 0 inputs ["y.1"] outputs ["y.2"] attrs {} cores <1:2> segment 0 label "col2im" after(%[[V12]], %[[V19]], %[[V26]])
// CHECK-NEXT:   %[[V30:[0-9]+]] = cim_meta.vector "reshape" element_ops 0 inputs ["y.2"] outputs ["z"] attrs {} cores <0:1> segment 0 label "reshape" after(%[[V29]])
// CHECK-NEXT:   %[[V31:[0-9]+]] = cim_meta.segment 0 label "allocate g" allocs [#cim_meta.alloc<"g" 16 bytes buffer>] after(%[[V30]])
// CHECK-NEXT:   %[[V32:[0-9]+]] = cim_meta.vector "global_pool" element_ops 1024 inputs ["z"] outputs ["g"] attrs {kind = #cim_graph<pool_kind avg>} cores <0:2> in_bytes 1024 out_bytes 16 segment 0 label "global_pool" after(%[[V31]], %[[V30]])
// CHECK-NEXT:   %[[V33:[0-9]+]] = cim_meta.free [#cim_meta.place<"y.1" buffer>] segment 0 label "y.1" after(%[[V12]], %[[V19]], %[[V26]], %[[V29]], %[[V30]], %[[V32]])
// CHECK-NEXT:   %[[V34:[0-9]+]] = cim_meta.vector "reshape" element_ops 0 inputs ["g"] outputs ["r"] attrs {} cores <1:2> segment 0 label "reshape" after(%[[V32]])
// CHECK-NEXT:   %[[V35:[0-9]+]] = cim_meta.segment 0 label "allocate l" allocs [#cim_meta.alloc<"l" 10 bytes buffer>] after(%[[V34]])
// CHECK-NEXT:   %[[V36:[0-9]+]] = cim_meta.move "r" 16 bytes in cores <0:1> segment 0 label "fc.w" allocs [#cim_meta.alloc<"r[0:1]" 26 bytes local cores <0:1>>] after(%[[V34]], %[[V35]], %[[V13]])
// CHECK-NEXT:   %[[V37:[0-9]+]] = cim_meta.mvm "fc.w" arrays <2:4> vectors 1 rows 16 cols 32 k [0, 16] n [0, 10] v [0, 1] input "r" output "l" local_bytes 16 segment 0 label "fc.w" after(%[[V36]], %[[V3]])
// CHECK-NEXT:   %[[V38:[0-9]+]] = cim_meta.move "l" 10 bytes out cores <0:1> block [0, 0, 1] segment 0 label "fc.w" after(%[[V37]])
// CHECK-NEXT:   %[[V39:[0-9]+]] = cim_meta.free [#cim_meta.place<"r[0:1]" local cores <0:1>>] segment 0 label "r[0:1]" after(%[[V38]], %[[V37]])
// CHECK-NEXT:   %[[V40:[0-9]+]] = cim_meta.free [#cim_meta.place<"g" buffer>] segment 0 label "g" after(%[[V32]], %[[V34]], %[[V36]])
// CHECK-NEXT:   %[[V41:[0-9]+]] = cim_meta.store "l" 10 bytes buffer -> dram segment 0 label "output0" after(%[[V38]])
// CHECK-NEXT:   %[[V42:[0-9]+]] = cim_meta.free [#cim_meta.place<"l" buffer>] segment 0 label "l" after(%[[V38]], %[[V41]])
// CHECK-NEXT:   %[[V43:[0-9]+]] = cim_meta.free [#cim_meta.place<"conv.b" buffer>] segment 0 label "conv.b" after(%[[V5]], %[[V10]], %[[V11]], %[[V18]], %[[V25]])
// CHECK-NEXT: }

// -----

// An MLP over three segments. l1.w (Gemm with transB, bias; 1 x 5 tiles)
// fills segment 0. l2.w (k = 40, n = 256: 2 x 32 = 64 arrays) exceeds the chip
// and streams in segment 1: 8 chunks of 2 row tiles x 4 column tiles (32
// outputs, 40 x 32 = 1280 bytes each), each programmed straight from DRAM
// in one burst once the chunk before is done, multiplied (its input
// streamed from the buffer) and its row tiles added in their cores.
// l3.w (k = 256: 8 row tiles x 1) takes all 8 arrays in segment 2, its one
// copy programmed straight from DRAM in one burst; its partial sums meet on
// the vector units. Each segment
// barrier waits for the previous segment's last op. The weights are declared
// where first lowered, the streamed l2.w included (kn, k = 40, n = 256:
// MatMul's [K, N] operand). Each relu is applied by the accumulations that
// finish its layer's outputs (`then = "relu"`).
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

// CHECK:      cim_meta.schedule @mlp target "tiny" strategy "static" batch 2 inputs ["input0"] outputs ["y3"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<2x32xf32> bytes 64
// CHECK-NEXT:   cim_meta.weight "l1.w" layout nk groups 1 k 32 n 40
// CHECK-NEXT:   cim_meta.tensor "y1" : tensor<2x40xf32> bytes 80
// CHECK-NEXT:   cim_meta.tensor "r1" : tensor<2x40xf32> bytes 80
// CHECK-NEXT:   cim_meta.weight "l2.w" layout kn groups 1 k 40 n 256
// CHECK-NEXT:   cim_meta.tensor "y2" : tensor<2x256xf32> bytes 512
// CHECK-NEXT:   cim_meta.weight "l3.w" layout kn groups 1 k 256 n 8
// CHECK-NEXT:   cim_meta.tensor "y3" : tensor<2x8xf32> bytes 16
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.program "l1.w" arrays <0:5> rows 32 cols 32 k [0, 32] n [0, 40] feed dram in_bytes 1280 segment 0 label "l1.w" after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.segment 0 label "allocate y1" allocs [#cim_meta.alloc<"y1" 80 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.load "l1.b" 40 bytes dram -> buffer segment 0 label "l1.b" allocs [#cim_meta.alloc<"l1.b" 40 bytes buffer>] after(%[[V0]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.load "input0" 64 bytes dram -> buffer segment 0 label "input0" allocs [#cim_meta.alloc<"input0[0:2]@in" 64 bytes buffer>] after(%[[V2]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.move "input0" 64 bytes in cores <0:2> segment 0 label "l1.w" allocs [#cim_meta.alloc<"input0[0:2]" 208 bytes local cores <0:2>>] after(%[[V2]], %[[V4]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:2]@in" buffer>] segment 0 label "input0[0:2]@in" after(%[[V5]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.mvm "l1.w" arrays <0:5> vectors 2 rows 32 cols 32 k [0, 32] n [0, 40] v [0, 2] input "input0" output "y1" local_bytes 64 segment 0 label "l1.w" after(%[[V5]], %[[V1]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.move "l1.b" 40 bytes in cores <0:2> segment 0 label "l1.b@0:2" allocs [#cim_meta.alloc<"l1.b@0:2" 80 bytes local cores <0:2>>] after(%[[V3]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.vector "accumulate" element_ops 160 inputs ["y1", "l1.b"] outputs ["y1"] attrs {then = "relu"} block [0, 0, 2] cores <0:2> segment 0 label "y1" after(%[[V7]], %[[V8]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.move "y1" 80 bytes out cores <0:2> block [0, 0, 2] segment 0 label "l1.w" after(%[[V9]])
// CHECK-NEXT:   %[[V11:[0-9]+]] = cim_meta.free [#cim_meta.place<"input0[0:2]" local cores <0:2>>] segment 0 label "input0[0:2]" after(%[[V10]], %[[V7]])
// CHECK-NEXT:   %[[V12:[0-9]+]] = cim_meta.free [#cim_meta.place<"l1.b@0:2" local cores <0:2>>] segment 0 label "l1.b@0:2" after(%[[V9]])
// CHECK-NEXT:   %[[V13:[0-9]+]] = cim_meta.vector "reshape" element_ops 0 inputs ["y1"] outputs ["r1"] attrs {} cores <0:1> segment 0 label "reshape" after(%[[V10]])
// CHECK-NEXT:   %[[V14:[0-9]+]] = cim_meta.free [#cim_meta.place<"l1.b" buffer>] segment 0 label "l1.b" after(%[[V3]], %[[V8]], %[[V9]])
// CHECK-NEXT:   %[[V15:[0-9]+]] = cim_meta.segment 1 after(%[[V6]], %[[V11]], %[[V12]], %[[V13]], %[[V14]])
// CHECK-NEXT:   %[[V16:[0-9]+]] = cim_meta.segment 1 label "allocate y2" allocs [#cim_meta.alloc<"y2" 512 bytes buffer>] after(%[[V13]])
// CHECK-NEXT:   %[[V17:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [0, 32] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V1]], %[[V7]])
// CHECK-NEXT:   %[[V18:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [0, 32] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V17]])
// CHECK-NEXT:   %[[V19:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 0, 32] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V18]])
// CHECK-NEXT:   %[[V20:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [32, 64] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V19]], %[[V17]])
// CHECK-NEXT:   %[[V21:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [32, 64] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V20]])
// CHECK-NEXT:   %[[V22:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 32, 64] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V21]])
// CHECK-NEXT:   %[[V23:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [64, 96] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V22]], %[[V20]])
// CHECK-NEXT:   %[[V24:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [64, 96] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V23]])
// CHECK-NEXT:   %[[V25:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 64, 96] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V24]])
// CHECK-NEXT:   %[[V26:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [96, 128] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V25]], %[[V23]])
// CHECK-NEXT:   %[[V27:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [96, 128] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V26]])
// CHECK-NEXT:   %[[V28:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 96, 128] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V27]])
// CHECK-NEXT:   %[[V29:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [128, 160] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V28]], %[[V26]])
// CHECK-NEXT:   %[[V30:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [128, 160] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V29]])
// CHECK-NEXT:   %[[V31:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 128, 160] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V30]])
// CHECK-NEXT:   %[[V32:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [160, 192] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V31]], %[[V29]])
// CHECK-NEXT:   %[[V33:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [160, 192] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V32]])
// CHECK-NEXT:   %[[V34:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 160, 192] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V33]])
// CHECK-NEXT:   %[[V35:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [192, 224] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V34]], %[[V32]])
// CHECK-NEXT:   %[[V36:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [192, 224] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V35]])
// CHECK-NEXT:   %[[V37:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 192, 224] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V36]])
// CHECK-NEXT:   %[[V38:[0-9]+]] = cim_meta.program "l2.w" arrays <0:8> rows 32 cols 32 k [0, 40] n [224, 256] feed dram in_bytes 1280 segment 1 label "l2.w" after(%[[V37]], %[[V35]])
// CHECK-NEXT:   %[[V39:[0-9]+]] = cim_meta.mvm "l2.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 40] n [224, 256] v [0, 2] input "r1" output "y2" feed buffer in_bytes 80 local_bytes 80 segment 1 label "l2.w" after(%[[V13]], %[[V16]], %[[V38]])
// CHECK-NEXT:   %[[V40:[0-9]+]] = cim_meta.vector "accumulate" element_ops 64 inputs ["y2"] outputs ["y2"] attrs {} block [1, 224, 256] cores <0:2> out_bytes 64 segment 1 label "y2" after(%[[V39]])
// CHECK-NEXT:   %[[V41:[0-9]+]] = cim_meta.free [#cim_meta.place<"y1" buffer>] segment 1 label "y1" after(%[[V10]], %[[V13]], %[[V18]], %[[V21]], %[[V24]], %[[V27]], %[[V30]], %[[V33]], %[[V36]], %[[V39]])
// CHECK-NEXT:   %[[V42:[0-9]+]] = cim_meta.segment 2 after(%[[V15]], %[[V40]], %[[V41]])
// CHECK-NEXT:   %[[V43:[0-9]+]] = cim_meta.segment 2 label "join arrays 0:8" after(%[[V17]], %[[V18]], %[[V20]], %[[V21]], %[[V23]], %[[V24]], %[[V26]], %[[V27]], %[[V29]], %[[V30]], %[[V32]], %[[V33]], %[[V35]], %[[V36]], %[[V38]], %[[V39]])
// CHECK-NEXT:   %[[V44:[0-9]+]] = cim_meta.program "l3.w" arrays <0:8> rows 32 cols 32 k [0, 256] n [0, 8] feed dram in_bytes 2048 segment 2 label "l3.w" after(%[[V43]], %[[V15]])
// CHECK-NEXT:   %[[V45:[0-9]+]] = cim_meta.segment 2 label "allocate y3" allocs [#cim_meta.alloc<"y3" 16 bytes buffer>] after(%[[V19]], %[[V22]], %[[V25]], %[[V28]], %[[V31]], %[[V34]], %[[V37]], %[[V40]])
// CHECK-NEXT:   %[[V46:[0-9]+]] = cim_meta.mvm "l3.w" arrays <0:8> vectors 2 rows 32 cols 32 k [0, 256] n [0, 8] v [0, 2] input "y2" output "y3" feed buffer in_bytes 512 out_bytes 128 local_bytes 256 segment 2 label "l3.w" allocs [#cim_meta.alloc<"y3[0:2]@partials" 128 bytes buffer>] after(%[[V19]], %[[V22]], %[[V25]], %[[V28]], %[[V31]], %[[V34]], %[[V37]], %[[V40]], %[[V45]], %[[V44]])
// CHECK-NEXT:   %[[V47:[0-9]+]] = cim_meta.vector "accumulate" element_ops 112 inputs ["y3"] outputs ["y3"] attrs {} block [0, 0, 2] cores <0:2> in_bytes 128 out_bytes 16 segment 2 label "y3" after(%[[V46]])
// CHECK-NEXT:   %[[V48:[0-9]+]] = cim_meta.free [#cim_meta.place<"y3[0:2]@partials" buffer>] segment 2 label "y3[0:2]@partials" after(%[[V47]])
// CHECK-NEXT:   %[[V49:[0-9]+]] = cim_meta.free [#cim_meta.place<"y2" buffer>] segment 2 label "y2" after(%[[V19]], %[[V22]], %[[V25]], %[[V28]], %[[V31]], %[[V34]], %[[V37]], %[[V40]], %[[V46]])
// CHECK-NEXT:   %[[V50:[0-9]+]] = cim_meta.store "y3" 16 bytes buffer -> dram segment 2 label "output0" after(%[[V47]])
// CHECK-NEXT:   %[[V51:[0-9]+]] = cim_meta.free [#cim_meta.place<"y3" buffer>] segment 2 label "y3" after(%[[V47]], %[[V50]])
// CHECK-NEXT: }

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

// CHECK:      cim_meta.schedule @grouped target "tiny" strategy "static" batch 1 inputs ["input0"] outputs ["z.2"] {
// CHECK-NEXT:   cim_meta.tensor "input0" : tensor<1x8x4x4xf32> bytes 128
// CHECK-NEXT:   cim_meta.tensor "y" : tensor<16x72xf32> bytes 1152
// CHECK-NEXT:   cim_meta.weight "dw.w" layout oihw groups 8 k 9 n 1
// CHECK-NEXT:   cim_meta.weight "g.w" layout oihw groups 2 k 4 n 4
// CHECK-NEXT:   cim_meta.tensor "y.1" : tensor<16x8xf32> bytes 128
// CHECK-NEXT:   cim_meta.tensor "y.2" : tensor<1x8x4x4xf32> bytes 128
// CHECK-NEXT:   cim_meta.tensor "z" : tensor<16x8xf32> bytes 128
// CHECK-NEXT:   cim_meta.tensor "z.1" : tensor<16x8xf32> bytes 128
// CHECK-NEXT:   cim_meta.tensor "z.2" : tensor<1x8x4x4xf32> bytes 128
// CHECK-NEXT:   %[[V0:[0-9]+]] = cim_meta.segment 0{{$}}
// CHECK-NEXT:   %[[V1:[0-9]+]] = cim_meta.vector "im2col" element_ops 0 inputs ["input0"] outputs ["y"] attrs {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} cores <0:1> in_from dram out_to dram segment 0 label "im2col" after(%[[V0]])
// CHECK-NEXT:   %[[V2:[0-9]+]] = cim_meta.program "dw.w" arrays <0:3> rows 27 cols 12 k [0, 72] n [0, 8] feed dram in_bytes 72 segment 0 label "dw.w" after(%[[V0]])
// CHECK-NEXT:   %[[V3:[0-9]+]] = cim_meta.program "g.w" arrays <3:4> rows 8 cols 32 k [0, 8] n [0, 8] feed dram in_bytes 32 segment 0 label "g.w" after(%[[V2]])
// CHECK-NEXT:   %[[V4:[0-9]+]] = cim_meta.segment 0 label "allocate y.1" allocs [#cim_meta.alloc<"y.1" 128 bytes buffer>] after(%[[V1]])
// CHECK-NEXT:   %[[V5:[0-9]+]] = cim_meta.load "y" 128 bytes dram -> buffer segment 0 label "y" allocs [#cim_meta.alloc<"y[0:16]@in" 128 bytes buffer>] after(%[[V1]], %[[V4]])
// CHECK-NEXT:   %[[V6:[0-9]+]] = cim_meta.move "y" 128 bytes in cores <0:1> segment 0 label "dw.w" allocs [#cim_meta.alloc<"y[0:16]" 256 bytes local cores <0:1>>] after(%[[V1]], %[[V4]], %[[V5]])
// CHECK-NEXT:   %[[V7:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[0:16]@in" buffer>] segment 0 label "y[0:16]@in" after(%[[V6]])
// CHECK-NEXT:   %[[V8:[0-9]+]] = cim_meta.mvm "dw.w" arrays <0:3> vectors 16 rows 27 cols 12 k [0, 72] n [0, 8] v [0, 16] input "y" output "y.1" local_bytes 1152 segment 0 label "dw.w" after(%[[V6]], %[[V2]])
// CHECK-NEXT:   %[[V9:[0-9]+]] = cim_meta.move "y.1" 128 bytes out cores <0:1> block [0, 0, 16] segment 0 label "dw.w" after(%[[V8]])
// CHECK-NEXT:   %[[V10:[0-9]+]] = cim_meta.free [#cim_meta.place<"y[0:16]" local cores <0:1>>] segment 0 label "y[0:16]" after(%[[V9]], %[[V8]])
// CHECK-NEXT:   %[[V11:[0-9]+]] = cim_meta.vector "col2im" element_ops 0 inputs ["y.1"] outputs ["y.2"] attrs {} cores <1:2> segment 0 label "col2im" after(%[[V9]])
// CHECK-NEXT:   %[[V12:[0-9]+]] = cim_meta.vector "im2col" element_ops 0 inputs ["y.2"] outputs ["z"] attrs {kernel = array<i64: 1, 1>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 2 : i64} cores <0:1> segment 0 label "im2col" after(%[[V11]])
// CHECK-NEXT:   %[[V13:[0-9]+]] = cim_meta.segment 0 label "allocate z.1" allocs [#cim_meta.alloc<"z.1" 128 bytes buffer>] after(%[[V12]])
// CHECK-NEXT:   %[[V14:[0-9]+]] = cim_meta.move "z" 128 bytes in cores <0:1> segment 0 label "g.w" allocs [#cim_meta.alloc<"z[0:16]" 256 bytes local cores <0:1>>] after(%[[V12]], %[[V13]])
// CHECK-NEXT:   %[[V15:[0-9]+]] = cim_meta.mvm "g.w" arrays <3:4> vectors 16 rows 8 cols 32 k [0, 8] n [0, 8] v [0, 16] input "z" output "z.1" local_bytes 128 segment 0 label "g.w" after(%[[V14]], %[[V3]])
// CHECK-NEXT:   %[[V16:[0-9]+]] = cim_meta.move "z.1" 128 bytes out cores <0:1> block [0, 0, 16] segment 0 label "g.w" after(%[[V15]])
// CHECK-NEXT:   %[[V17:[0-9]+]] = cim_meta.free [#cim_meta.place<"z[0:16]" local cores <0:1>>] segment 0 label "z[0:16]" after(%[[V16]], %[[V15]])
// CHECK-NEXT:   %[[V18:[0-9]+]] = cim_meta.free [#cim_meta.place<"y.1" buffer>] segment 0 label "y.1" after(%[[V9]], %[[V11]], %[[V12]], %[[V14]])
// CHECK-NEXT:   %[[V19:[0-9]+]] = cim_meta.vector "col2im" element_ops 0 inputs ["z.1"] outputs ["z.2"] attrs {} cores <1:2> segment 0 label "col2im" after(%[[V16]])
// CHECK-NEXT:   %[[V20:[0-9]+]] = cim_meta.store "z.2" 128 bytes buffer -> dram segment 0 label "output0" after(%[[V19]])
// CHECK-NEXT:   %[[V21:[0-9]+]] = cim_meta.free [#cim_meta.place<"z.1" buffer>] segment 0 label "z.1" after(%[[V16]], %[[V19]], %[[V20]])
// CHECK-NEXT: }

// A weight too tall for several columns to fit the arrays at once streams
// in bands of row tiles (Inputs/tall_linear.mlir, 11008 x 4096 on
// dynaplasia: 35 row tiles a column; three bands of 12, 12 and 11 row
// tiles, eight columns a chunk, 39 chunks): each band of a column run is
// programmed and computed after the one before, so the run reads each
// input row once.

// BANDED-LABEL: cim_meta.schedule @tall
// BANDED:         cim_meta.program "down.w" arrays <0:96> rows 320 cols 320 k [0, 3840] n [0, 320] feed dram
// BANDED:         cim_meta.mvm "down.w" arrays <0:96> vectors 2 rows 320 cols 320 k [0, 3840] n [0, 320]
// BANDED:         cim_meta.program "down.w" arrays <0:96> rows 320 cols 320 k [3840, 7680] n [0, 320] feed dram
// BANDED:         cim_meta.program "down.w" arrays <0:88> rows 320 cols 320 k [7680, 11008] n [0, 320] feed dram
// BANDED:         cim_meta.program "down.w" arrays <0:96> rows 320 cols 320 k [0, 3840] n [320, 640] feed dram
// BANDED-NOT:     k [0, 11008]
