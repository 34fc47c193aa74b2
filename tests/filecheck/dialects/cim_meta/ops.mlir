// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Round trip of every cim_meta op, attribute and type, in the custom format
// (first RUN), through the generic format (second RUN), and the generic form
// itself (GENERIC). Each meta-op appears with and without `label` and `after`;
// the declarations (tensor, constant, weight) with and without attr-dict, the
// vector op with one and several outputs and empty and non-empty `attrs`.
// Empty bodies are spelled `^bb0:` as the printer does: a bare `{}` parses as
// a region without blocks, which the single-block bodies reject.

builtin.module attributes {test.arrays = #cim_meta.arrays<0:16, 32:40>, test.location = #cim_meta<location memory>} {
// CHECK: builtin.module attributes {test.arrays = #cim_meta.arrays<0:16, 32:40>, test.location = #cim_meta<location memory>} {
  cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["x"] outputs ["y"] {
  // CHECK-NEXT: cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["x"] outputs ["y"] {
  // GENERIC: "cim_meta.schedule"() <{sym_name = "main", target = "dynaplasia", strategy = "static", batch = 1 : i64, inputs = ["x"], outputs = ["y"]}> ({
    cim_meta.tensor "x" : tensor<1x512xf32> bytes 512
    // CHECK-NEXT: cim_meta.tensor "x" : tensor<1x512xf32> bytes 512
    // GENERIC: "cim_meta.tensor"() <{tensor = "x", type = tensor<1x512xf32>, bytes = 512 : i64}> : () -> ()
    cim_meta.tensor "h" : tensor<1x64xf32> bytes 64
    // CHECK-NEXT: cim_meta.tensor "h" : tensor<1x64xf32> bytes 64
    // GENERIC: "cim_meta.tensor"() <{tensor = "h", type = tensor<1x64xf32>, bytes = 64 : i64}> : () -> ()
    cim_meta.tensor "y" : tensor<1x10xf32> bytes 10
    // CHECK-NEXT: cim_meta.tensor "y" : tensor<1x10xf32> bytes 10
    // GENERIC: "cim_meta.tensor"() <{tensor = "y", type = tensor<1x10xf32>, bytes = 10 : i64}> : () -> ()
    cim_meta.constant "scale" = dense<0.125> : tensor<f32>
    // CHECK-NEXT: cim_meta.constant "scale" = dense<1.250000e-01> : tensor<f32>
    // GENERIC: "cim_meta.constant"() <{tensor = "scale", value = dense<1.250000e-01> : tensor<f32>}> : () -> ()
    cim_meta.constant "shift" = dense<[1.0, -2.5, 0.0]> : tensor<3xf32>
    // CHECK-NEXT: cim_meta.constant "shift" = dense<[1.000000e+00, -2.500000e+00, 0.000000e+00]> : tensor<3xf32>
    // GENERIC: "cim_meta.constant"() <{tensor = "shift", value = dense<[1.000000e+00, -2.500000e+00, 0.000000e+00]> : tensor<3xf32>}> : () -> ()
    cim_meta.constant "idx" = dense<[[0, 1], [2, 3]]> : tensor<2x2xi64> {test.note = "ids"}
    // CHECK-NEXT: cim_meta.constant "idx" = dense<[[0, 1], [2, 3]]> : tensor<2x2xi64> {test.note = "ids"}
    // GENERIC: "cim_meta.constant"() <{tensor = "idx", value = dense<[[0, 1], [2, 3]]> : tensor<2x2xi64>}> {test.note = "ids"} : () -> ()
    cim_meta.weight "fc.weight" layout nk groups 1 k 512 n 10
    // CHECK-NEXT: cim_meta.weight "fc.weight" layout nk groups 1 k 512 n 10
    // GENERIC: "cim_meta.weight"() <{weight = "fc.weight", layout = #cim_tile<layout nk>, groups = 1 : i64, k = 512 : i64, n = 10 : i64}> : () -> ()
    cim_meta.weight "nm.w" layout nk groups 1 k 512 n 64 rows 256 intra_block 4
    // CHECK-NEXT: cim_meta.weight "nm.w" layout nk groups 1 k 512 n 64 rows 256 intra_block 4
    // GENERIC: "cim_meta.weight"() <{weight = "nm.w", layout = #cim_tile<layout nk>, groups = 1 : i64, k = 512 : i64, n = 64 : i64, rows = 256 : i64, intra_block = 4 : i64}> : () -> ()
    cim_meta.weight "flex.w" layout nk groups 1 k 512 n 64 rows 128 intra_block 4 driven 256
    // CHECK-NEXT: cim_meta.weight "flex.w" layout nk groups 1 k 512 n 64 rows 128 intra_block 4 driven 256
    // GENERIC: "cim_meta.weight"() <{weight = "flex.w", layout = #cim_tile<layout nk>, groups = 1 : i64, k = 512 : i64, n = 64 : i64, rows = 128 : i64, intra_block = 4 : i64, driven = 256 : i64}> : () -> ()
    cim_meta.weight "channels.w" layout oihw groups 1 k 576 n 64 rows 288 index_block 9
    // CHECK-NEXT: cim_meta.weight "channels.w" layout oihw groups 1 k 576 n 64 rows 288 index_block 9
    // GENERIC: "cim_meta.weight"() <{weight = "channels.w", layout = #cim_tile<layout oihw>, groups = 1 : i64, k = 576 : i64, n = 64 : i64, rows = 288 : i64, index_block = 9 : i64}> : () -> ()
    cim_meta.weight "sliced.w" layout kn groups 1 k 512 n 64 rows 300 column_row_tiles [3, 1]
    // CHECK-NEXT: cim_meta.weight "sliced.w" layout kn groups 1 k 512 n 64 rows 300 column_row_tiles [3, 1]
    // GENERIC: "cim_meta.weight"() <{weight = "sliced.w", layout = #cim_tile<layout kn>, groups = 1 : i64, k = 512 : i64, n = 64 : i64, rows = 300 : i64, column_row_tiles = array<i64: 3, 1>}> : () -> ()
    cim_meta.weight "filters.w" layout oihw groups 1 k 576 n 64 columns 32
    // CHECK-NEXT: cim_meta.weight "filters.w" layout oihw groups 1 k 576 n 64 columns 32
    // GENERIC: "cim_meta.weight"() <{weight = "filters.w", layout = #cim_tile<layout oihw>, groups = 1 : i64, k = 576 : i64, n = 64 : i64, columns = 32 : i64}> : () -> ()
    cim_meta.weight "mm.w" layout kn groups 1 k 64 n 8
    // CHECK-NEXT: cim_meta.weight "mm.w" layout kn groups 1 k 64 n 8
    // GENERIC: "cim_meta.weight"() <{weight = "mm.w", layout = #cim_tile<layout kn>, groups = 1 : i64, k = 64 : i64, n = 8 : i64}> : () -> ()
    cim_meta.weight "dw.w" layout oihw groups 32 k 9 n 1 {test.note = "depthwise"}
    // CHECK-NEXT: cim_meta.weight "dw.w" layout oihw groups 32 k 9 n 1 {test.note = "depthwise"}
    // GENERIC: "cim_meta.weight"() <{weight = "dw.w", layout = #cim_tile<layout oihw>, groups = 32 : i64, k = 9 : i64, n = 1 : i64}> {test.note = "depthwise"} : () -> ()
    %0 = cim_meta.load "x" 512 bytes dram -> buffer segment 0
    // CHECK-NEXT: %0 = cim_meta.load "x" 512 bytes dram -> buffer segment 0
    // GENERIC: %0 = "cim_meta.load"() <{tensor = "x", bytes = 512 : i64, src = #cim_meta<location dram>, dst = #cim_meta<location buffer>, segment = 0 : i64}> : () -> !cim_meta.token
    %1 = cim_meta.load "fc.weight" 5120 bytes dram -> buffer segment 0 label "fc"
    // CHECK-NEXT: %1 = cim_meta.load "fc.weight" 5120 bytes dram -> buffer segment 0 label "fc"
    // GENERIC: %1 = "cim_meta.load"() <{tensor = "fc.weight", bytes = 5120 : i64, src = #cim_meta<location dram>, dst = #cim_meta<location buffer>, segment = 0 : i64, label = "fc"}> : () -> !cim_meta.token
    %2 = cim_meta.program "fc.weight" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] segment 0 after(%1)
    // CHECK-NEXT: %2 = cim_meta.program "fc.weight" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] segment 0 after(%1)
    // GENERIC: %2 = "cim_meta.program"(%1) <{weight = "fc.weight", arrays = #cim_meta.arrays<0:2>, rows = 320 : i64, cols = 80 : i64, k = array<i64: 0, 512>, n = array<i64: 0, 10>, segment = 0 : i64, source = #cim_meta<source weight>, feed = #cim_meta<feed buffer>, in_bytes = 0 : i64, copies = 1 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %3 = cim_meta.program "fc.weight" arrays <2:3, 5:6> rows 64 cols 32 k [0, 64] n [0, 8] segment 0 label "fc.part" after(%1, %2)
    // CHECK-NEXT: %3 = cim_meta.program "fc.weight" arrays <2:3, 5:6> rows 64 cols 32 k [0, 64] n [0, 8] segment 0 label "fc.part" after(%1, %2)
    // GENERIC: %3 = "cim_meta.program"(%1, %2) <{weight = "fc.weight", arrays = #cim_meta.arrays<2:3, 5:6>, rows = 64 : i64, cols = 32 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, segment = 0 : i64, label = "fc.part", source = #cim_meta<source weight>, feed = #cim_meta<feed buffer>, in_bytes = 0 : i64, copies = 1 : i64}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %mc = cim_meta.program "fc.weight" arrays <0:2, 4:6> rows 320 cols 80 k [0, 512] n [0, 10] in_bytes 10240 copies 2 segment 0 after(%1)
    // CHECK-NEXT: %mc = cim_meta.program "fc.weight" arrays <0:2, 4:6> rows 320 cols 80 k [0, 512] n [0, 10] in_bytes 10240 copies 2 segment 0 after(%1)
    // GENERIC: %mc = "cim_meta.program"(%1) <{weight = "fc.weight", arrays = #cim_meta.arrays<0:2, 4:6>, rows = 320 : i64, cols = 80 : i64, k = array<i64: 0, 512>, n = array<i64: 0, 10>, in_bytes = 10240 : i64, copies = 2 : i64, segment = 0 : i64, source = #cim_meta<source weight>, feed = #cim_meta<feed buffer>}> : (!cim_meta.token) -> !cim_meta.token
    %4 = cim_meta.mvm "fc.weight" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "h" segment 0 after(%0, %2)
    // CHECK-NEXT: %4 = cim_meta.mvm "fc.weight" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "h" segment 0 after(%0, %2)
    // GENERIC: %4 = "cim_meta.mvm"(%0, %2) <{weight = "fc.weight", arrays = #cim_meta.arrays<0:2>, vectors = 1 : i64, rows = 320 : i64, cols = 80 : i64, k = array<i64: 0, 512>, n = array<i64: 0, 10>, v = array<i64: 0, 1>, input = "x", output = "h", segment = 0 : i64, feed = #cim_meta<feed local>, in_bytes = 0 : i64, out_bytes = 0 : i64, local_bytes = 0 : i64, out_to = #cim_meta<location buffer>}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %5 = cim_meta.mvm "fc.weight" arrays <2:3, 5:6> vectors 2 rows 64 cols 32 k [0, 64] n [0, 8] v [0, 4] input "h" output "y" segment 0 label "mvm.part"
    // CHECK-NEXT: %5 = cim_meta.mvm "fc.weight" arrays <2:3, 5:6> vectors 2 rows 64 cols 32 k [0, 64] n [0, 8] v [0, 4] input "h" output "y" segment 0 label "mvm.part"
    // GENERIC: %5 = "cim_meta.mvm"() <{weight = "fc.weight", arrays = #cim_meta.arrays<2:3, 5:6>, vectors = 2 : i64, rows = 64 : i64, cols = 32 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, v = array<i64: 0, 4>, input = "h", output = "y", segment = 0 : i64, label = "mvm.part", feed = #cim_meta<feed local>, in_bytes = 0 : i64, out_bytes = 0 : i64, local_bytes = 0 : i64, out_to = #cim_meta<location buffer>}> : () -> !cim_meta.token
    %6 = cim_meta.vector "accumulate" element_ops 10 inputs ["h", "y"] outputs ["y"] attrs {} segment 0 after(%4, %5)
    // CHECK-NEXT: %6 = cim_meta.vector "accumulate" element_ops 10 inputs ["h", "y"] outputs ["y"] attrs {} segment 0 after(%4, %5)
    // GENERIC: %6 = "cim_meta.vector"(%4, %5) <{kind = "accumulate", element_ops = 10 : i64, inputs = ["h", "y"], outputs = ["y"], attrs = {}, segment = 0 : i64, in_bytes = 0 : i64, out_bytes = 0 : i64, in_from = #cim_meta<location buffer>, out_to = #cim_meta<location buffer>}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %part = cim_meta.vector "accumulate" element_ops 16 inputs ["y"] outputs ["y"] attrs {vectors = array<i64: 0, 2>} block [1, 0, 8] cores <0:2> in_bytes 128 segment 0
    // CHECK-NEXT: %part = cim_meta.vector "accumulate" element_ops 16 inputs ["y"] outputs ["y"] attrs {vectors = array<i64: 0, 2>} block [1, 0, 8] cores <0:2> in_bytes 128 segment 0
    // GENERIC: %part = "cim_meta.vector"() <{kind = "accumulate", element_ops = 16 : i64, inputs = ["y"], outputs = ["y"], attrs = {vectors = array<i64: 0, 2>}, block = array<i64: 1, 0, 8>, cores = #cim_meta.cores<0:2>, in_bytes = 128 : i64, segment = 0 : i64, out_bytes = 0 : i64, in_from = #cim_meta<location buffer>, out_to = #cim_meta<location buffer>}> : () -> !cim_meta.token
    %7 = cim_meta.vector "noop" element_ops 0 inputs [] outputs ["y"] attrs {} segment 0 label "v"
    // CHECK-NEXT: %7 = cim_meta.vector "noop" element_ops 0 inputs [] outputs ["y"] attrs {} segment 0 label "v"
    // GENERIC: %7 = "cim_meta.vector"() <{kind = "noop", element_ops = 0 : i64, inputs = [], outputs = ["y"], attrs = {}, segment = 0 : i64, label = "v", in_bytes = 0 : i64, out_bytes = 0 : i64, in_from = #cim_meta<location buffer>, out_to = #cim_meta<location buffer>}> : () -> !cim_meta.token
    %parts = cim_meta.vector "split" element_ops 64 inputs ["h"] outputs ["h", "y", "x"] attrs {axis = 1 : i64} segment 0 label "split" after(%6, %7)
    // CHECK-NEXT: %parts = cim_meta.vector "split" element_ops 64 inputs ["h"] outputs ["h", "y", "x"] attrs {axis = 1 : i64} segment 0 label "split" after(%6, %7)
    // GENERIC: %parts = "cim_meta.vector"(%6, %7) <{kind = "split", element_ops = 64 : i64, inputs = ["h"], outputs = ["h", "y", "x"], attrs = {axis = 1 : i64}, segment = 0 : i64, label = "split", in_bytes = 0 : i64, out_bytes = 0 : i64, in_from = #cim_meta<location buffer>, out_to = #cim_meta<location buffer>}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %scaled = cim_meta.vector "mul" element_ops 10 inputs ["y", "scale"] outputs ["y"] attrs {kind = #cim_graph<binary_kind mul>} segment 0
    // CHECK-NEXT: %scaled = cim_meta.vector "mul" element_ops 10 inputs ["y", "scale"] outputs ["y"] attrs {kind = #cim_graph<binary_kind mul>} segment 0
    // GENERIC: %scaled = "cim_meta.vector"() <{kind = "mul", element_ops = 10 : i64, inputs = ["y", "scale"], outputs = ["y"], attrs = {kind = #cim_graph<binary_kind mul>}, segment = 0 : i64, in_bytes = 0 : i64, out_bytes = 0 : i64, in_from = #cim_meta<location buffer>, out_to = #cim_meta<location buffer>}> : () -> !cim_meta.token
    %params = cim_meta.vector "im2col" element_ops 4608 inputs ["x"] outputs ["h"] attrs {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, epsilon = 1.0e-05 : f32, keepdims, mode = "constant"} segment 0
    // CHECK-NEXT: %params = cim_meta.vector "im2col" element_ops 4608 inputs ["x"] outputs ["h"] attrs {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, epsilon = 1.000000e-05 : f32, keepdims, mode = "constant"} segment 0
    // GENERIC: %params = "cim_meta.vector"() <{kind = "im2col", element_ops = 4608 : i64, inputs = ["x"], outputs = ["h"], attrs = {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, epsilon = 1.000000e-05 : f32, keepdims, mode = "constant"}, segment = 0 : i64, in_bytes = 0 : i64, out_bytes = 0 : i64, in_from = #cim_meta<location buffer>, out_to = #cim_meta<location buffer>}> : () -> !cim_meta.token
    %8 = cim_meta.move "y" 10 bytes in segment 0 after(%6)
    // CHECK-NEXT: %8 = cim_meta.move "y" 10 bytes in segment 0 after(%6)
    // GENERIC: %8 = "cim_meta.move"(%6) <{tensor = "y", bytes = 10 : i64, dir = #cim_meta<dir in>, segment = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %9 = cim_meta.move "h" 64 bytes in segment 0 label "mv"
    // CHECK-NEXT: %9 = cim_meta.move "h" 64 bytes in segment 0 label "mv"
    // GENERIC: %9 = "cim_meta.move"() <{tensor = "h", bytes = 64 : i64, dir = #cim_meta<dir in>, segment = 0 : i64, label = "mv"}> : () -> !cim_meta.token
    %mv = cim_meta.move "h" 64 bytes in cores <0:2> link_bytes 128 segment 0
    // CHECK-NEXT: %mv = cim_meta.move "h" 64 bytes in cores <0:2> link_bytes 128 segment 0
    // GENERIC: %mv = "cim_meta.move"() <{tensor = "h", bytes = 64 : i64, dir = #cim_meta<dir in>, cores = #cim_meta.cores<0:2>, link_bytes = 128 : i64, segment = 0 : i64}> : () -> !cim_meta.token
    %mm = cim_meta.mvm "fc.weight" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "h" feed buffer in_bytes 512 in_link_bytes 1024 segment 0
    // CHECK-NEXT: %mm = cim_meta.mvm "fc.weight" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "h" feed buffer in_bytes 512 in_link_bytes 1024 segment 0
    // GENERIC: %mm = "cim_meta.mvm"() <{weight = "fc.weight", arrays = #cim_meta.arrays<0:2>, vectors = 1 : i64, rows = 320 : i64, cols = 80 : i64, k = array<i64: 0, 512>, n = array<i64: 0, 10>, v = array<i64: 0, 1>, input = "x", output = "h", feed = #cim_meta<feed buffer>, in_bytes = 512 : i64, in_link_bytes = 1024 : i64, segment = 0 : i64, out_bytes = 0 : i64, local_bytes = 0 : i64, out_to = #cim_meta<location buffer>}> : () -> !cim_meta.token
    %10 = cim_meta.switch arrays <0:2, 4:6> to <memory> segment 0 after(%8)
    // CHECK-NEXT: %10 = cim_meta.switch arrays <0:2, 4:6> to <memory> segment 0 after(%8)
    // GENERIC: %10 = "cim_meta.switch"(%8) <{arrays = #cim_meta.arrays<0:2, 4:6>, to = #cim_tile.mode<memory>, segment = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %11 = cim_meta.switch arrays <8:16> to <compute> segment 0 label "sw"
    // CHECK-NEXT: %11 = cim_meta.switch arrays <8:16> to <compute> segment 0 label "sw"
    // GENERIC: %11 = "cim_meta.switch"() <{arrays = #cim_meta.arrays<8:16>, to = #cim_tile.mode<compute>, segment = 0 : i64, label = "sw"}> : () -> !cim_meta.token
    %12 = cim_meta.store "y" 10 bytes buffer -> memory arrays <0:2> segment 0 after(%10)
    // CHECK-NEXT: %12 = cim_meta.store "y" 10 bytes buffer -> memory arrays <0:2> segment 0 after(%10)
    // GENERIC: %12 = "cim_meta.store"(%10) <{tensor = "y", bytes = 10 : i64, src = #cim_meta<location buffer>, dst = #cim_meta<location memory>, arrays = #cim_meta.arrays<0:2>, segment = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %13 = cim_meta.load "y" 10 bytes memory -> buffer arrays <0:2> segment 0 label "reload" after(%12)
    // CHECK-NEXT: %13 = cim_meta.load "y" 10 bytes memory -> buffer arrays <0:2> segment 0 label "reload" after(%12)
    // GENERIC: %13 = "cim_meta.load"(%12) <{tensor = "y", bytes = 10 : i64, src = #cim_meta<location memory>, dst = #cim_meta<location buffer>, arrays = #cim_meta.arrays<0:2>, segment = 0 : i64, label = "reload"}> : (!cim_meta.token) -> !cim_meta.token
    %14 = cim_meta.segment 1 after(%13, %11)
    // CHECK-NEXT: %14 = cim_meta.segment 1 after(%13, %11)
    // GENERIC: %14 = "cim_meta.segment"(%13, %11) <{segment = 1 : i64}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %15 = cim_meta.segment 2 label "tail"
    // CHECK-NEXT: %15 = cim_meta.segment 2 label "tail"
    // GENERIC: %15 = "cim_meta.segment"() <{segment = 2 : i64, label = "tail"}> : () -> !cim_meta.token
    %16 = cim_meta.parallel segment 1 after(%14) {
    // CHECK-NEXT: %16 = cim_meta.parallel segment 1 after(%14) {
    // GENERIC: %16 = "cim_meta.parallel"(%14) <{segment = 1 : i64}> ({
      %a = cim_meta.store "y" 10 bytes buffer -> dram segment 1
      // CHECK-NEXT: %a = cim_meta.store "y" 10 bytes buffer -> dram segment 1
      // GENERIC: %a = "cim_meta.store"() <{tensor = "y", bytes = 10 : i64, src = #cim_meta<location buffer>, dst = #cim_meta<location dram>, segment = 1 : i64}> : () -> !cim_meta.token
      %b = cim_meta.move "y" 10 bytes in segment 1 after(%a)
      // CHECK-NEXT: %b = cim_meta.move "y" 10 bytes in segment 1 after(%a)
      // GENERIC: %b = "cim_meta.move"(%a) <{tensor = "y", bytes = 10 : i64, dir = #cim_meta<dir in>, segment = 1 : i64}> : (!cim_meta.token) -> !cim_meta.token
    }
    // CHECK-NEXT: }
    %17 = cim_meta.parallel segment 2 label "group" {
    // CHECK-NEXT: %17 = cim_meta.parallel segment 2 label "group" {
    // GENERIC: %17 = "cim_meta.parallel"() <{segment = 2 : i64, label = "group"}> ({
      %c = cim_meta.segment 2
      // CHECK-NEXT: %c = cim_meta.segment 2
      // GENERIC: %c = "cim_meta.segment"() <{segment = 2 : i64}> : () -> !cim_meta.token
    }
    // CHECK-NEXT: }
    %18 = cim_meta.store "y" 10 bytes buffer -> dram segment 2 after(%16, %17)
    // CHECK-NEXT: %18 = cim_meta.store "y" 10 bytes buffer -> dram segment 2 after(%16, %17)
    // GENERIC: %18 = "cim_meta.store"(%16, %17) <{tensor = "y", bytes = 10 : i64, src = #cim_meta<location buffer>, dst = #cim_meta<location dram>, segment = 2 : i64}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %19 = cim_meta.parallel segment 2 after(%18) {
    // CHECK-NEXT: %19 = cim_meta.parallel segment 2 after(%18) {
    // GENERIC: %19 = "cim_meta.parallel"(%18) <{segment = 2 : i64}> ({
    ^bb0:
    // CHECK-NEXT: ^bb0:
    }
    // CHECK-NEXT: }
  }
  // CHECK-NEXT: }
  // Version-5 keys: allocations on every kind of op, frees, cores on moves,
  // vector ops and local transfers, MVM feeds, a tensor program (the weight
  // "k" views the tensor declared before it), streams from and to DRAM and
  // memory-mode arrays (programs, MVMs and vector ops: %s0 - %s5).
  cim_meta.schedule @v5 target "dynaplasia" strategy "dual-mode" batch 1 inputs ["q"] outputs ["o"] {
  // CHECK-NEXT: cim_meta.schedule @v5 target "dynaplasia" strategy "dual-mode" batch 1 inputs ["q"] outputs ["o"] {
  // GENERIC: "cim_meta.schedule"() <{sym_name = "v5", target = "dynaplasia", strategy = "dual-mode", batch = 1 : i64, inputs = ["q"], outputs = ["o"]}> ({
    cim_meta.tensor "q" : tensor<4x64xf32> bytes 256
    // CHECK-NEXT: cim_meta.tensor "q" : tensor<4x64xf32> bytes 256
    // GENERIC: "cim_meta.tensor"() <{tensor = "q", type = tensor<4x64xf32>, bytes = 256 : i64}> : () -> ()
    cim_meta.tensor "k" : tensor<64x8xf32> bytes 512
    // CHECK-NEXT: cim_meta.tensor "k" : tensor<64x8xf32> bytes 512
    // GENERIC: "cim_meta.tensor"() <{tensor = "k", type = tensor<64x8xf32>, bytes = 512 : i64}> : () -> ()
    cim_meta.tensor "o" : tensor<4x8xf32> bytes 32
    // CHECK-NEXT: cim_meta.tensor "o" : tensor<4x8xf32> bytes 32
    // GENERIC: "cim_meta.tensor"() <{tensor = "o", type = tensor<4x8xf32>, bytes = 32 : i64}> : () -> ()
    cim_meta.weight "k" layout kn groups 1 k 64 n 8
    // CHECK-NEXT: cim_meta.weight "k" layout kn groups 1 k 64 n 8
    // GENERIC: "cim_meta.weight"() <{weight = "k", layout = #cim_tile<layout kn>, groups = 1 : i64, k = 64 : i64, n = 8 : i64}> : () -> ()
    %v0 = cim_meta.load "q" 256 bytes dram -> buffer segment 0 allocs [#cim_meta.alloc<"q" 256 bytes buffer>]
    // CHECK-NEXT: %v0 = cim_meta.load "q" 256 bytes dram -> buffer segment 0 allocs [#cim_meta.alloc<"q" 256 bytes buffer>]
    // GENERIC: %v0 = "cim_meta.load"() <{tensor = "q", bytes = 256 : i64, src = #cim_meta<location dram>, dst = #cim_meta<location buffer>, segment = 0 : i64, allocs = [#cim_meta.alloc<"q" 256 bytes buffer>]}> : () -> !cim_meta.token
    %v1 = cim_meta.move "q" 256 bytes in cores <0:2> segment 0 allocs [#cim_meta.alloc<"q" 256 bytes local cores <0:2>>] after(%v0)
    // CHECK-NEXT: %v1 = cim_meta.move "q" 256 bytes in cores <0:2> segment 0 allocs [#cim_meta.alloc<"q" 256 bytes local cores <0:2>>] after(%v0)
    // GENERIC: %v1 = "cim_meta.move"(%v0) <{tensor = "q", bytes = 256 : i64, dir = #cim_meta<dir in>, cores = #cim_meta.cores<0:2>, segment = 0 : i64, allocs = [#cim_meta.alloc<"q" 256 bytes local cores <0:2>>]}> : (!cim_meta.token) -> !cim_meta.token
    %v2 = cim_meta.program "k" arrays <0:1> rows 64 cols 64 k [0, 64] n [0, 8] source tensor segment 0 label "qk" after(%v0)
    // CHECK-NEXT: %v2 = cim_meta.program "k" arrays <0:1> rows 64 cols 64 k [0, 64] n [0, 8] source tensor segment 0 label "qk" after(%v0)
    // GENERIC: %v2 = "cim_meta.program"(%v0) <{weight = "k", arrays = #cim_meta.arrays<0:1>, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, source = #cim_meta<source tensor>, segment = 0 : i64, label = "qk", feed = #cim_meta<feed buffer>, in_bytes = 0 : i64, copies = 1 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %v3 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" local_bytes 256 segment 0 after(%v1, %v2)
    // CHECK-NEXT: %v3 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" local_bytes 256 segment 0 after(%v1, %v2)
    // GENERIC: %v3 = "cim_meta.mvm"(%v1, %v2) <{weight = "k", arrays = #cim_meta.arrays<0:1>, vectors = 4 : i64, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, v = array<i64: 0, 4>, input = "q", output = "o", local_bytes = 256 : i64, segment = 0 : i64, feed = #cim_meta<feed local>, in_bytes = 0 : i64, out_bytes = 0 : i64, out_to = #cim_meta<location buffer>}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %v4 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed buffer in_bytes 256 out_bytes 32 segment 0 after(%v2)
    // CHECK-NEXT: %v4 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed buffer in_bytes 256 out_bytes 32 segment 0 after(%v2)
    // GENERIC: %v4 = "cim_meta.mvm"(%v2) <{weight = "k", arrays = #cim_meta.arrays<0:1>, vectors = 4 : i64, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, v = array<i64: 0, 4>, input = "q", output = "o", feed = #cim_meta<feed buffer>, in_bytes = 256 : i64, out_bytes = 32 : i64, segment = 0 : i64, local_bytes = 0 : i64, out_to = #cim_meta<location buffer>}> : (!cim_meta.token) -> !cim_meta.token
    %v5 = cim_meta.switch arrays <12:14> to <memory> segment 0 allocs [#cim_meta.alloc<"t" 0 bytes memory arrays <12:14>>]
    // CHECK-NEXT: %v5 = cim_meta.switch arrays <12:14> to <memory> segment 0 allocs [#cim_meta.alloc<"t" 0 bytes memory arrays <12:14>>]
    // GENERIC: %v5 = "cim_meta.switch"() <{arrays = #cim_meta.arrays<12:14>, to = #cim_tile.mode<memory>, segment = 0 : i64, allocs = [#cim_meta.alloc<"t" 0 bytes memory arrays <12:14>>]}> : () -> !cim_meta.token
    %v6 = cim_meta.store "q" 256 bytes local -> memory arrays <12:14> cores <1:2> segment 0 allocs [#cim_meta.alloc<"q" 256 bytes memory arrays <12:14>>] after(%v1, %v5)
    // CHECK-NEXT: %v6 = cim_meta.store "q" 256 bytes local -> memory arrays <12:14> cores <1:2> segment 0 allocs [#cim_meta.alloc<"q" 256 bytes memory arrays <12:14>>] after(%v1, %v5)
    // GENERIC: %v6 = "cim_meta.store"(%v1, %v5) <{tensor = "q", bytes = 256 : i64, src = #cim_meta<location local>, dst = #cim_meta<location memory>, arrays = #cim_meta.arrays<12:14>, cores = #cim_meta.cores<1:2>, segment = 0 : i64, allocs = [#cim_meta.alloc<"q" 256 bytes memory arrays <12:14>>]}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %v7 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed memory feed_arrays <12:14> in_bytes 256 segment 0 label "fed" after(%v2, %v6)
    // CHECK-NEXT: %v7 = cim_meta.mvm "k" arrays <0:1> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed memory feed_arrays <12:14> in_bytes 256 segment 0 label "fed" after(%v2, %v6)
    // GENERIC: %v7 = "cim_meta.mvm"(%v2, %v6) <{weight = "k", arrays = #cim_meta.arrays<0:1>, vectors = 4 : i64, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, v = array<i64: 0, 4>, input = "q", output = "o", feed = #cim_meta<feed memory>, feed_arrays = #cim_meta.arrays<12:14>, in_bytes = 256 : i64, segment = 0 : i64, label = "fed", out_bytes = 0 : i64, local_bytes = 0 : i64, out_to = #cim_meta<location buffer>}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %v8 = cim_meta.load "q" 256 bytes memory -> local arrays <12:14> cores <1:2> segment 0 after(%v6)
    // CHECK-NEXT: %v8 = cim_meta.load "q" 256 bytes memory -> local arrays <12:14> cores <1:2> segment 0 after(%v6)
    // GENERIC: %v8 = "cim_meta.load"(%v6) <{tensor = "q", bytes = 256 : i64, src = #cim_meta<location memory>, dst = #cim_meta<location local>, arrays = #cim_meta.arrays<12:14>, cores = #cim_meta.cores<1:2>, segment = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %v9 = cim_meta.move "o" 32 bytes out cores <0:1> block [0, 0, 4] segment 0 allocs [#cim_meta.alloc<"o" 32 bytes buffer>] after(%v3)
    // CHECK-NEXT: %v9 = cim_meta.move "o" 32 bytes out cores <0:1> block [0, 0, 4] segment 0 allocs [#cim_meta.alloc<"o" 32 bytes buffer>] after(%v3)
    // GENERIC: %v9 = "cim_meta.move"(%v3) <{tensor = "o", bytes = 32 : i64, dir = #cim_meta<dir out>, cores = #cim_meta.cores<0:1>, block = array<i64: 0, 0, 4>, segment = 0 : i64, allocs = [#cim_meta.alloc<"o" 32 bytes buffer>]}> : (!cim_meta.token) -> !cim_meta.token
    %v10 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} cores <0:1, 3:4> in_bytes 32 out_bytes 32 segment 0 after(%v9)
    // CHECK-NEXT: %v10 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} cores <0:1, 3:4> in_bytes 32 out_bytes 32 segment 0 after(%v9)
    // GENERIC: %v10 = "cim_meta.vector"(%v9) <{kind = "relu", element_ops = 32 : i64, inputs = ["o"], outputs = ["o"], attrs = {}, cores = #cim_meta.cores<0:1, 3:4>, in_bytes = 32 : i64, out_bytes = 32 : i64, segment = 0 : i64, in_from = #cim_meta<location buffer>, out_to = #cim_meta<location buffer>}> : (!cim_meta.token) -> !cim_meta.token
    %s0 = cim_meta.program "k" arrays <1:2> rows 64 cols 64 k [0, 64] n [0, 8] feed dram in_bytes 512 segment 0
    // CHECK-NEXT: %s0 = cim_meta.program "k" arrays <1:2> rows 64 cols 64 k [0, 64] n [0, 8] feed dram in_bytes 512 segment 0
    // GENERIC: %s0 = "cim_meta.program"() <{weight = "k", arrays = #cim_meta.arrays<1:2>, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, feed = #cim_meta<feed dram>, in_bytes = 512 : i64, segment = 0 : i64, source = #cim_meta<source weight>, copies = 1 : i64}> : () -> !cim_meta.token
    %s1 = cim_meta.program "k" arrays <2:3> rows 64 cols 64 k [0, 64] n [0, 8] source tensor feed memory feed_arrays <12:14> in_bytes 512 segment 0 label "from memory" after(%v6)
    // CHECK-NEXT: %s1 = cim_meta.program "k" arrays <2:3> rows 64 cols 64 k [0, 64] n [0, 8] source tensor feed memory feed_arrays <12:14> in_bytes 512 segment 0 label "from memory" after(%v6)
    // GENERIC: %s1 = "cim_meta.program"(%v6) <{weight = "k", arrays = #cim_meta.arrays<2:3>, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, source = #cim_meta<source tensor>, feed = #cim_meta<feed memory>, feed_arrays = #cim_meta.arrays<12:14>, in_bytes = 512 : i64, segment = 0 : i64, label = "from memory", copies = 1 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %s9 = cim_meta.program "fc.weight" arrays <4:6> rows 320 cols 80 k [0, 512] n [0, 10] feed cells segment 1 after(%s0)
    // CHECK-NEXT: %s9 = cim_meta.program "fc.weight" arrays <4:6> rows 320 cols 80 k [0, 512] n [0, 10] feed cells segment 1 after(%s0)
    // GENERIC: %s9 = "cim_meta.program"(%s0) <{weight = "fc.weight", arrays = #cim_meta.arrays<4:6>, rows = 320 : i64, cols = 80 : i64, k = array<i64: 0, 512>, n = array<i64: 0, 10>, feed = #cim_meta<feed cells>, segment = 1 : i64, source = #cim_meta<source weight>, in_bytes = 0 : i64, copies = 1 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %s2 = cim_meta.mvm "k" arrays <1:2> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed dram in_bytes 256 out_to dram out_bytes 32 segment 0 after(%s0)
    // CHECK-NEXT: %s2 = cim_meta.mvm "k" arrays <1:2> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed dram in_bytes 256 out_to dram out_bytes 32 segment 0 after(%s0)
    // GENERIC: %s2 = "cim_meta.mvm"(%s0) <{weight = "k", arrays = #cim_meta.arrays<1:2>, vectors = 4 : i64, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, v = array<i64: 0, 4>, input = "q", output = "o", feed = #cim_meta<feed dram>, in_bytes = 256 : i64, out_to = #cim_meta<location dram>, out_bytes = 32 : i64, segment = 0 : i64, local_bytes = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %s3 = cim_meta.mvm "k" arrays <2:3> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed memory feed_arrays <12:14> in_bytes 256 out_to memory out_arrays <14:15> out_bytes 32 segment 0 after(%s1)
    // CHECK-NEXT: %s3 = cim_meta.mvm "k" arrays <2:3> vectors 4 rows 64 cols 64 k [0, 64] n [0, 8] v [0, 4] input "q" output "o" feed memory feed_arrays <12:14> in_bytes 256 out_to memory out_arrays <14:15> out_bytes 32 segment 0 after(%s1)
    // GENERIC: %s3 = "cim_meta.mvm"(%s1) <{weight = "k", arrays = #cim_meta.arrays<2:3>, vectors = 4 : i64, rows = 64 : i64, cols = 64 : i64, k = array<i64: 0, 64>, n = array<i64: 0, 8>, v = array<i64: 0, 4>, input = "q", output = "o", feed = #cim_meta<feed memory>, feed_arrays = #cim_meta.arrays<12:14>, in_bytes = 256 : i64, out_to = #cim_meta<location memory>, out_arrays = #cim_meta.arrays<14:15>, out_bytes = 32 : i64, segment = 0 : i64, local_bytes = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %s4 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} cores <0:1> in_from dram in_bytes 32 out_to memory out_arrays <14:16> out_bytes 32 segment 0 after(%s2)
    // CHECK-NEXT: %s4 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} cores <0:1> in_from dram in_bytes 32 out_to memory out_arrays <14:16> out_bytes 32 segment 0 after(%s2)
    // GENERIC: %s4 = "cim_meta.vector"(%s2) <{kind = "relu", element_ops = 32 : i64, inputs = ["o"], outputs = ["o"], attrs = {}, cores = #cim_meta.cores<0:1>, in_from = #cim_meta<location dram>, in_bytes = 32 : i64, out_to = #cim_meta<location memory>, out_arrays = #cim_meta.arrays<14:16>, out_bytes = 32 : i64, segment = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %s5 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} in_from memory in_arrays <14:15> in_bytes 32 out_to dram out_bytes 32 segment 0 after(%s3)
    // CHECK-NEXT: %s5 = cim_meta.vector "relu" element_ops 32 inputs ["o"] outputs ["o"] attrs {} in_from memory in_arrays <14:15> in_bytes 32 out_to dram out_bytes 32 segment 0 after(%s3)
    // GENERIC: %s5 = "cim_meta.vector"(%s3) <{kind = "relu", element_ops = 32 : i64, inputs = ["o"], outputs = ["o"], attrs = {}, in_from = #cim_meta<location memory>, in_arrays = #cim_meta.arrays<14:15>, in_bytes = 32 : i64, out_to = #cim_meta<location dram>, out_bytes = 32 : i64, segment = 0 : i64}> : (!cim_meta.token) -> !cim_meta.token
    %v11 = cim_meta.free [#cim_meta.place<"q" buffer>, #cim_meta.place<"q" local cores <0:2>>, #cim_meta.place<"q" memory arrays <12:14>>] segment 0 label "done with q" after(%v3, %v4, %v7, %v8)
    // CHECK-NEXT: %v11 = cim_meta.free [#cim_meta.place<"q" buffer>, #cim_meta.place<"q" local cores <0:2>>, #cim_meta.place<"q" memory arrays <12:14>>] segment 0 label "done with q" after(%v3, %v4, %v7, %v8)
    // GENERIC: %v11 = "cim_meta.free"(%v3, %v4, %v7, %v8) <{frees = [#cim_meta.place<"q" buffer>, #cim_meta.place<"q" local cores <0:2>>, #cim_meta.place<"q" memory arrays <12:14>>], segment = 0 : i64, label = "done with q"}> : (!cim_meta.token, !cim_meta.token, !cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %v12 = cim_meta.segment 1 allocs [#cim_meta.alloc<"o" 32 bytes local cores <0:1>>] after(%v10, %v11)
    // CHECK-NEXT: %v12 = cim_meta.segment 1 allocs [#cim_meta.alloc<"o" 32 bytes local cores <0:1>>] after(%v10, %v11)
    // GENERIC: %v12 = "cim_meta.segment"(%v10, %v11) <{segment = 1 : i64, allocs = [#cim_meta.alloc<"o" 32 bytes local cores <0:1>>]}> : (!cim_meta.token, !cim_meta.token) -> !cim_meta.token
    %v13 = cim_meta.parallel segment 1 allocs [#cim_meta.alloc<"o" 32 bytes buffer>] after(%v12) {
    // CHECK-NEXT: %v13 = cim_meta.parallel segment 1 allocs [#cim_meta.alloc<"o" 32 bytes buffer>] after(%v12) {
    // GENERIC: %v13 = "cim_meta.parallel"(%v12) <{segment = 1 : i64, allocs = [#cim_meta.alloc<"o" 32 bytes buffer>]}> ({
      %d = cim_meta.store "o" 32 bytes buffer -> dram segment 1
      // CHECK-NEXT: %d = cim_meta.store "o" 32 bytes buffer -> dram segment 1
      // GENERIC: %d = "cim_meta.store"() <{tensor = "o", bytes = 32 : i64, src = #cim_meta<location buffer>, dst = #cim_meta<location dram>, segment = 1 : i64}> : () -> !cim_meta.token
    }
    // CHECK-NEXT: }
  }
  // CHECK-NEXT: }
  cim_meta.schedule @other target "generic" strategy "dynamic" batch 8 inputs [] outputs [] attributes {test.note = "no io"} {
  // CHECK-NEXT: cim_meta.schedule @other target "generic" strategy "dynamic" batch 8 inputs [] outputs [] attributes {test.note = "no io"} {
  // GENERIC: "cim_meta.schedule"() <{sym_name = "other", target = "generic", strategy = "dynamic", batch = 8 : i64, inputs = [], outputs = []}> ({
    cim_meta.tensor "scratch" : tensor<f32> bytes 0
    // CHECK-NEXT: cim_meta.tensor "scratch" : tensor<f32> bytes 0
    // GENERIC: "cim_meta.tensor"() <{tensor = "scratch", type = tensor<f32>, bytes = 0 : i64}> : () -> ()
  }
  // CHECK-NEXT: }
  cim_meta.schedule @decode target "tiny" strategy "static" batch 1 inputs ["token", "past.0.key"] outputs [] {
  // CHECK-NEXT: cim_meta.schedule @decode target "tiny" strategy "static" batch 1 inputs ["token", "past.0.key"] outputs [] {
  // GENERIC: "cim_meta.schedule"() <{sym_name = "decode", target = "tiny", strategy = "static", batch = 1 : i64, inputs = ["token", "past.0.key"], outputs = []}> ({
    cim_meta.tensor "token" : tensor<1x1xi64> bytes 1
    // CHECK-NEXT: cim_meta.tensor "token" : tensor<1x1xi64> bytes 1
    // GENERIC: "cim_meta.tensor"() <{tensor = "token", type = tensor<1x1xi64>, bytes = 1 : i64}> : () -> ()
    cim_meta.tensor "past.0.key" : tensor<1x2x8x16xf32> bytes 256 arrays <0:2> {test.note = "kv cache"}
    // CHECK-NEXT: cim_meta.tensor "past.0.key" : tensor<1x2x8x16xf32> bytes 256 arrays <0:2> {test.note = "kv cache"}
    // GENERIC: "cim_meta.tensor"() <{tensor = "past.0.key", type = tensor<1x2x8x16xf32>, bytes = 256 : i64, arrays = #cim_meta.arrays<0:2>}> {test.note = "kv cache"} : () -> ()
  }
  // CHECK-NEXT: }
  cim_meta.schedule @empty target "dynaplasia" strategy "static" batch 1 inputs [] outputs [] {
  // CHECK-NEXT: cim_meta.schedule @empty target "dynaplasia" strategy "static" batch 1 inputs [] outputs [] {
  // GENERIC: "cim_meta.schedule"() <{sym_name = "empty", target = "dynaplasia", strategy = "static", batch = 1 : i64, inputs = [], outputs = []}> ({
  ^bb0:
  // CHECK-NEXT: ^bb0:
  }
  // CHECK-NEXT: }
  func.func @tokens(%t: !cim_meta.token) -> !cim_meta.token {
  // CHECK-NEXT: func.func @tokens(%t: !cim_meta.token) -> !cim_meta.token {
    func.return %t : !cim_meta.token
    // CHECK-NEXT: func.return %t : !cim_meta.token
  }
  // CHECK-NEXT: }
}
// CHECK-NEXT: }
// GENERIC: }) {test.arrays = #cim_meta.arrays<0:16, 32:40>, test.location = #cim_meta<location memory>} : () -> ()
