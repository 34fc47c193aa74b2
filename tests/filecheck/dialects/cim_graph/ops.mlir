// RUN: xdsl-opt %s | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Round trip of every cim_graph op and attribute, in the custom format (first
// RUN), through the generic format (second RUN), and the generic form itself
// (GENERIC). Every enum case appears once; optional parts appear both present
// and absent. Run with the stock xdsl-opt: this also checks the package's
// `xdsl.universe` entry point. `#cim_graph.source` appears with and without
// import dims; they print sorted by name.

builtin.module attributes {cim_graph.source = #cim_graph.source<"models/tiny.onnx">, test.dims = #cim_graph.source<"models/tiny.onnx", sequence = 8, batch = 2>, test.no_file = #cim_graph.source<"">, test.no_file_dims = #cim_graph.source<"", batch = 1>} {
// CHECK: builtin.module attributes {cim_graph.source = #cim_graph.source<"models/tiny.onnx">, test.dims = #cim_graph.source<"models/tiny.onnx", batch = 2, sequence = 8>, test.no_file = #cim_graph.source<"">, test.no_file_dims = #cim_graph.source<"", batch = 1>} {
  func.func @graph(%x: tensor<1x3x8x8xf32>, %ids: tensor<1x4xi64>) {
  // CHECK-NEXT: func.func @graph(%x: tensor<1x3x8x8xf32>, %ids: tensor<1x4xi64>) {
    %cw = cim_graph.weight "conv.weight" : tensor<4x3x3x3xf32>
    // CHECK-NEXT: %cw = cim_graph.weight "conv.weight" : tensor<4x3x3x3xf32>
    // GENERIC: %cw = "cim_graph.weight"() <{name = "conv.weight"}> : () -> tensor<4x3x3x3xf32>
    %cb = cim_graph.weight "conv.bias" : tensor<4xf32>
    // CHECK-NEXT: %cb = cim_graph.weight "conv.bias" : tensor<4xf32>
    // GENERIC: %cb = "cim_graph.weight"() <{name = "conv.bias"}> : () -> tensor<4xf32>
    %dw = cim_graph.weight "dw.weight" : tensor<4x1x3x3xf32>
    // CHECK-NEXT: %dw = cim_graph.weight "dw.weight" : tensor<4x1x3x3xf32>
    // GENERIC: %dw = "cim_graph.weight"() <{name = "dw.weight"}> : () -> tensor<4x1x3x3xf32>
    %fw = cim_graph.weight "fc.weight" : tensor<16x64xf32>
    // CHECK-NEXT: %fw = cim_graph.weight "fc.weight" : tensor<16x64xf32>
    // GENERIC: %fw = "cim_graph.weight"() <{name = "fc.weight"}> : () -> tensor<16x64xf32>
    %fb = cim_graph.weight "fc.bias" : tensor<16xf32>
    // CHECK-NEXT: %fb = cim_graph.weight "fc.bias" : tensor<16xf32>
    // GENERIC: %fb = "cim_graph.weight"() <{name = "fc.bias"}> : () -> tensor<16xf32>
    %pw = cim_graph.weight "proj.weight" : tensor<16x32xf32>
    // CHECK-NEXT: %pw = cim_graph.weight "proj.weight" : tensor<16x32xf32>
    // GENERIC: %pw = "cim_graph.weight"() <{name = "proj.weight"}> : () -> tensor<16x32xf32>
    %pb = cim_graph.weight "proj.bias" : tensor<1x32xf32>
    // CHECK-NEXT: %pb = cim_graph.weight "proj.bias" : tensor<1x32xf32>
    // GENERIC: %pb = "cim_graph.weight"() <{name = "proj.bias"}> : () -> tensor<1x32xf32>
    %lng = cim_graph.weight "ln.weight" : tensor<16xf32>
    // CHECK-NEXT: %lng = cim_graph.weight "ln.weight" : tensor<16xf32>
    // GENERIC: %lng = "cim_graph.weight"() <{name = "ln.weight"}> : () -> tensor<16xf32>
    %lnb = cim_graph.weight "ln.bias" : tensor<16xf32>
    // CHECK-NEXT: %lnb = cim_graph.weight "ln.bias" : tensor<16xf32>
    // GENERIC: %lnb = "cim_graph.weight"() <{name = "ln.bias"}> : () -> tensor<16xf32>
    %emb = cim_graph.weight "embed.weight" : tensor<100x16xf32>
    // CHECK-NEXT: %emb = cim_graph.weight "embed.weight" : tensor<100x16xf32>
    // GENERIC: %emb = "cim_graph.weight"() <{name = "embed.weight"}> : () -> tensor<100x16xf32>
    %c0 = cim_graph.constant dense<[5.000000e-01, 2.000000e+00]> : tensor<2xf32>
    // CHECK-NEXT: %c0 = cim_graph.constant dense<[5.000000e-01, 2.000000e+00]> : tensor<2xf32>
    // GENERIC: %c0 = "cim_graph.constant"() <{value = dense<[5.000000e-01, 2.000000e+00]> : tensor<2xf32>}> : () -> tensor<2xf32>
    %c1 = cim_graph.constant dense<[1, 2, 3]> : tensor<3xi64> {test.tag = "shape"}
    // CHECK-NEXT: %c1 = cim_graph.constant dense<[1, 2, 3]> : tensor<3xi64> {test.tag = "shape"}
    // GENERIC: %c1 = "cim_graph.constant"() <{value = dense<[1, 2, 3]> : tensor<3xi64>}> {test.tag = "shape"} : () -> tensor<3xi64>
    %c2 = cim_graph.constant dense<0.000000e+00> : tensor<f32>
    // CHECK-NEXT: %c2 = cim_graph.constant dense<0.000000e+00> : tensor<f32>
    // GENERIC: %c2 = "cim_graph.constant"() <{value = dense<0.000000e+00> : tensor<f32>}> : () -> tensor<f32>
    %c3 = cim_graph.constant dense<1.000000e+00> : tensor<4096xf32>
    // CHECK-NEXT: %c3 = cim_graph.constant dense<1.000000e+00> : tensor<4096xf32>
    // GENERIC: %c3 = "cim_graph.constant"() <{value = dense<1.000000e+00> : tensor<4096xf32>}> : () -> tensor<4096xf32>
    %conv = cim_graph.conv %x, %cw, %cb strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
    // CHECK-NEXT: %conv = cim_graph.conv %x, %cw, %cb strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
    // GENERIC: %conv = "cim_graph.conv"(%x, %cw, %cb) <{strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64}> : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
    %dconv = cim_graph.conv %conv, %dw strides [2, 2] pads [2, 2, 2, 2] dilations [2, 2] groups 4 : (tensor<1x4x8x8xf32>, tensor<4x1x3x3xf32>) -> tensor<1x4x4x4xf32>
    // CHECK-NEXT: %dconv = cim_graph.conv %conv, %dw strides [2, 2] pads [2, 2, 2, 2] dilations [2, 2] groups 4 : (tensor<1x4x8x8xf32>, tensor<4x1x3x3xf32>) -> tensor<1x4x4x4xf32>
    // GENERIC: %dconv = "cim_graph.conv"(%conv, %dw) <{strides = array<i64: 2, 2>, pads = array<i64: 2, 2, 2, 2>, dilations = array<i64: 2, 2>, groups = 4 : i64}> : (tensor<1x4x8x8xf32>, tensor<4x1x3x3xf32>) -> tensor<1x4x4x4xf32>
    %flat = cim_graph.reshape %conv : tensor<1x4x8x8xf32> -> tensor<1x4x64xf32>
    // CHECK-NEXT: %flat = cim_graph.reshape %conv : tensor<1x4x8x8xf32> -> tensor<1x4x64xf32>
    // GENERIC: %flat = "cim_graph.reshape"(%conv) : (tensor<1x4x8x8xf32>) -> tensor<1x4x64xf32>
    %fc = cim_graph.linear %flat, %fw, %fb transpose_weight : (tensor<1x4x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %fc = cim_graph.linear %flat, %fw, %fb transpose_weight : (tensor<1x4x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %fc = "cim_graph.linear"(%flat, %fw, %fb) <{transpose_weight}> : (tensor<1x4x64xf32>, tensor<16x64xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    %proj = cim_graph.linear %fc, %pw : (tensor<1x4x16xf32>, tensor<16x32xf32>) -> tensor<1x4x32xf32>
    // CHECK-NEXT: %proj = cim_graph.linear %fc, %pw : (tensor<1x4x16xf32>, tensor<16x32xf32>) -> tensor<1x4x32xf32>
    // GENERIC: %proj = "cim_graph.linear"(%fc, %pw) : (tensor<1x4x16xf32>, tensor<16x32xf32>) -> tensor<1x4x32xf32>
    %projb = cim_graph.linear %fc, %pw, %pb : (tensor<1x4x16xf32>, tensor<16x32xf32>, tensor<1x32xf32>) -> tensor<1x4x32xf32>
    // CHECK-NEXT: %projb = cim_graph.linear %fc, %pw, %pb : (tensor<1x4x16xf32>, tensor<16x32xf32>, tensor<1x32xf32>) -> tensor<1x4x32xf32>
    // GENERIC: %projb = "cim_graph.linear"(%fc, %pw, %pb) : (tensor<1x4x16xf32>, tensor<16x32xf32>, tensor<1x32xf32>) -> tensor<1x4x32xf32>
    %fct = cim_graph.transpose %fc perm [0, 2, 1] : tensor<1x4x16xf32> -> tensor<1x16x4xf32>
    // CHECK-NEXT: %fct = cim_graph.transpose %fc perm [0, 2, 1] : tensor<1x4x16xf32> -> tensor<1x16x4xf32>
    // GENERIC: %fct = "cim_graph.transpose"(%fc) <{perm = array<i64: 0, 2, 1>}> : (tensor<1x4x16xf32>) -> tensor<1x16x4xf32>
    %scores = cim_graph.matmul %fc, %fct : (tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> tensor<1x4x4xf32>
    // CHECK-NEXT: %scores = cim_graph.matmul %fc, %fct : (tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> tensor<1x4x4xf32>
    // GENERIC: %scores = "cim_graph.matmul"(%fc, %fct) : (tensor<1x4x16xf32>, tensor<1x16x4xf32>) -> tensor<1x4x4xf32>
    %fct2 = cim_graph.reshape %fct : tensor<1x16x4xf32> -> tensor<16x4xf32>
    // CHECK-NEXT: %fct2 = cim_graph.reshape %fct : tensor<1x16x4xf32> -> tensor<16x4xf32>
    // GENERIC: %fct2 = "cim_graph.reshape"(%fct) : (tensor<1x16x4xf32>) -> tensor<16x4xf32>
    %bmm = cim_graph.matmul %fc, %fct2 : (tensor<1x4x16xf32>, tensor<16x4xf32>) -> tensor<1x4x4xf32>
    // CHECK-NEXT: %bmm = cim_graph.matmul %fc, %fct2 : (tensor<1x4x16xf32>, tensor<16x4xf32>) -> tensor<1x4x4xf32>
    // GENERIC: %bmm = "cim_graph.matmul"(%fc, %fct2) : (tensor<1x4x16xf32>, tensor<16x4xf32>) -> tensor<1x4x4xf32>
    %u0 = cim_graph.unary relu %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u0 = cim_graph.unary relu %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u0 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind relu>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u1 = cim_graph.unary sigmoid %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u1 = cim_graph.unary sigmoid %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u1 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind sigmoid>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u2 = cim_graph.unary tanh %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u2 = cim_graph.unary tanh %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u2 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind tanh>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u3 = cim_graph.unary erf %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u3 = cim_graph.unary erf %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u3 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind erf>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u4 = cim_graph.unary exp %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u4 = cim_graph.unary exp %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u4 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind exp>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u5 = cim_graph.unary log %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u5 = cim_graph.unary log %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u5 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind log>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u6 = cim_graph.unary sqrt %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u6 = cim_graph.unary sqrt %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u6 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind sqrt>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u7 = cim_graph.unary reciprocal %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u7 = cim_graph.unary reciprocal %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u7 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind reciprocal>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u8 = cim_graph.unary neg %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u8 = cim_graph.unary neg %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u8 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind neg>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u9 = cim_graph.unary abs %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u9 = cim_graph.unary abs %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u9 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind abs>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u10 = cim_graph.unary gelu %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u10 = cim_graph.unary gelu %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u10 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind gelu>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u10t = cim_graph.unary gelu_tanh %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u10t = cim_graph.unary gelu_tanh %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u10t = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind gelu_tanh>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u11 = cim_graph.unary silu %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u11 = cim_graph.unary silu %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u11 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind silu>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u12 = cim_graph.unary softplus %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u12 = cim_graph.unary softplus %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u12 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind softplus>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u13 = cim_graph.unary floor %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u13 = cim_graph.unary floor %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u13 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind floor>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u14 = cim_graph.unary ceil %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u14 = cim_graph.unary ceil %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u14 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind ceil>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u15 = cim_graph.unary cos %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u15 = cim_graph.unary cos %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u15 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind cos>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %u16 = cim_graph.unary sin %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %u16 = cim_graph.unary sin %fc : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %u16 = "cim_graph.unary"(%fc) <{kind = #cim_graph<unary_kind sin>}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %b0 = cim_graph.binary add %fc, %fb : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %b0 = cim_graph.binary add %fc, %fb : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %b0 = "cim_graph.binary"(%fc, %fb) <{kind = #cim_graph<binary_kind add>}> : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    %b1 = cim_graph.binary sub %fc, %u0 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %b1 = cim_graph.binary sub %fc, %u0 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %b1 = "cim_graph.binary"(%fc, %u0) <{kind = #cim_graph<binary_kind sub>}> : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %b2 = cim_graph.binary mul %fc, %c2 : (tensor<1x4x16xf32>, tensor<f32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %b2 = cim_graph.binary mul %fc, %c2 : (tensor<1x4x16xf32>, tensor<f32>) -> tensor<1x4x16xf32>
    // GENERIC: %b2 = "cim_graph.binary"(%fc, %c2) <{kind = #cim_graph<binary_kind mul>}> : (tensor<1x4x16xf32>, tensor<f32>) -> tensor<1x4x16xf32>
    %b3 = cim_graph.binary div %c2, %fc : (tensor<f32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %b3 = cim_graph.binary div %c2, %fc : (tensor<f32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %b3 = "cim_graph.binary"(%c2, %fc) <{kind = #cim_graph<binary_kind div>}> : (tensor<f32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %b4 = cim_graph.binary pow %fc, %u1 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %b4 = cim_graph.binary pow %fc, %u1 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %b4 = "cim_graph.binary"(%fc, %u1) <{kind = #cim_graph<binary_kind pow>}> : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %b5 = cim_graph.binary max %fc, %u2 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %b5 = cim_graph.binary max %fc, %u2 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %b5 = "cim_graph.binary"(%fc, %u2) <{kind = #cim_graph<binary_kind max>}> : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %b6 = cim_graph.binary min %fc, %u3 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %b6 = cim_graph.binary min %fc, %u3 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %b6 = "cim_graph.binary"(%fc, %u3) <{kind = #cim_graph<binary_kind min>}> : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %b7 = cim_graph.binary equal %ids, %ids : (tensor<1x4xi64>, tensor<1x4xi64>) -> tensor<1x4xi1>
    // CHECK-NEXT: %b7 = cim_graph.binary equal %ids, %ids : (tensor<1x4xi64>, tensor<1x4xi64>) -> tensor<1x4xi1>
    // GENERIC: %b7 = "cim_graph.binary"(%ids, %ids) <{kind = #cim_graph<binary_kind equal>}> : (tensor<1x4xi64>, tensor<1x4xi64>) -> tensor<1x4xi1>
    %b8 = cim_graph.binary less %fc, %u4 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xi1>
    // CHECK-NEXT: %b8 = cim_graph.binary less %fc, %u4 : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xi1>
    // GENERIC: %b8 = "cim_graph.binary"(%fc, %u4) <{kind = #cim_graph<binary_kind less>}> : (tensor<1x4x16xf32>, tensor<1x4x16xf32>) -> tensor<1x4x16xi1>
    %b9 = cim_graph.binary greater %fc, %fb : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xi1>
    // CHECK-NEXT: %b9 = cim_graph.binary greater %fc, %fb : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xi1>
    // GENERIC: %b9 = "cim_graph.binary"(%fc, %fb) <{kind = #cim_graph<binary_kind greater>}> : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xi1>
    %b10 = cim_graph.binary and %b8, %b9 : (tensor<1x4x16xi1>, tensor<1x4x16xi1>) -> tensor<1x4x16xi1>
    // CHECK-NEXT: %b10 = cim_graph.binary and %b8, %b9 : (tensor<1x4x16xi1>, tensor<1x4x16xi1>) -> tensor<1x4x16xi1>
    // GENERIC: %b10 = "cim_graph.binary"(%b8, %b9) <{kind = #cim_graph<binary_kind and>}> : (tensor<1x4x16xi1>, tensor<1x4x16xi1>) -> tensor<1x4x16xi1>
    %b11 = cim_graph.binary or %b8, %b10 : (tensor<1x4x16xi1>, tensor<1x4x16xi1>) -> tensor<1x4x16xi1>
    // CHECK-NEXT: %b11 = cim_graph.binary or %b8, %b10 : (tensor<1x4x16xi1>, tensor<1x4x16xi1>) -> tensor<1x4x16xi1>
    // GENERIC: %b11 = "cim_graph.binary"(%b8, %b10) <{kind = #cim_graph<binary_kind or>}> : (tensor<1x4x16xi1>, tensor<1x4x16xi1>) -> tensor<1x4x16xi1>
    %u17 = cim_graph.unary not %b11 : tensor<1x4x16xi1> -> tensor<1x4x16xi1>
    // CHECK-NEXT: %u17 = cim_graph.unary not %b11 : tensor<1x4x16xi1> -> tensor<1x4x16xi1>
    // GENERIC: %u17 = "cim_graph.unary"(%b11) <{kind = #cim_graph<unary_kind not>}> : (tensor<1x4x16xi1>) -> tensor<1x4x16xi1>
    %sel = cim_graph.where %u17, %fc, %c2 : (tensor<1x4x16xi1>, tensor<1x4x16xf32>, tensor<f32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %sel = cim_graph.where %u17, %fc, %c2 : (tensor<1x4x16xi1>, tensor<1x4x16xf32>, tensor<f32>) -> tensor<1x4x16xf32>
    // GENERIC: %sel = "cim_graph.where"(%u17, %fc, %c2) : (tensor<1x4x16xi1>, tensor<1x4x16xf32>, tensor<f32>) -> tensor<1x4x16xf32>
    %idsf = cim_graph.cast %ids : tensor<1x4xi64> -> tensor<1x4xf32>
    // CHECK-NEXT: %idsf = cim_graph.cast %ids : tensor<1x4xi64> -> tensor<1x4xf32>
    // GENERIC: %idsf = "cim_graph.cast"(%ids) : (tensor<1x4xi64>) -> tensor<1x4xf32>
    %relu6 = cim_graph.clip %fc min 0.000000e+00 max 6.000000e+00 : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // CHECK-NEXT: %relu6 = cim_graph.clip %fc min 0.000000e+00 max 6.000000e+00 : tensor<1x4x16xf32> -> tensor<1x4x16xf32>
    // GENERIC: %relu6 = "cim_graph.clip"(%fc) <{min = 0.000000e+00 : f32, max = 6.000000e+00 : f32}> : (tensor<1x4x16xf32>) -> tensor<1x4x16xf32>
    %sm = cim_graph.softmax %scores axis -1 : tensor<1x4x4xf32> -> tensor<1x4x4xf32>
    // CHECK-NEXT: %sm = cim_graph.softmax %scores axis -1 : tensor<1x4x4xf32> -> tensor<1x4x4xf32>
    // GENERIC: %sm = "cim_graph.softmax"(%scores) <{axis = -1 : i64}> : (tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
    %sm1 = cim_graph.softmax %scores axis 1 : tensor<1x4x4xf32> -> tensor<1x4x4xf32>
    // CHECK-NEXT: %sm1 = cim_graph.softmax %scores axis 1 : tensor<1x4x4xf32> -> tensor<1x4x4xf32>
    // GENERIC: %sm1 = "cim_graph.softmax"(%scores) <{axis = 1 : i64}> : (tensor<1x4x4xf32>) -> tensor<1x4x4xf32>
    %ln = cim_graph.layer_norm %fc, %lng, %lnb axis -1 epsilon 1.000000e-12 : (tensor<1x4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %ln = cim_graph.layer_norm %fc, %lng, %lnb axis -1 epsilon 1.000000e-12 : (tensor<1x4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %ln = "cim_graph.layer_norm"(%fc, %lng, %lnb) <{axis = -1 : i64, epsilon = 1.000000e-12 : f32}> : (tensor<1x4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    %ln2 = cim_graph.layer_norm %fc, %lng axis 2 epsilon 1.000000e-05 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %ln2 = cim_graph.layer_norm %fc, %lng axis 2 epsilon 1.000000e-05 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %ln2 = "cim_graph.layer_norm"(%fc, %lng) <{axis = 2 : i64, epsilon = 1.000000e-05 : f32}> : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    %rms = cim_graph.rms_norm %fc, %lng axis -1 epsilon 1.000000e-06 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %rms = cim_graph.rms_norm %fc, %lng axis -1 epsilon 1.000000e-06 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    // GENERIC: %rms = "cim_graph.rms_norm"(%fc, %lng) <{axis = -1 : i64, epsilon = 1.000000e-06 : f32}> : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>
    %r0 = cim_graph.reduce sum %fc axes [2] keepdims : tensor<1x4x16xf32> -> tensor<1x4x1xf32>
    // CHECK-NEXT: %r0 = cim_graph.reduce sum %fc axes [2] keepdims : tensor<1x4x16xf32> -> tensor<1x4x1xf32>
    // GENERIC: %r0 = "cim_graph.reduce"(%fc) <{kind = #cim_graph<reduce_kind sum>, axes = array<i64: 2>, keepdims}> : (tensor<1x4x16xf32>) -> tensor<1x4x1xf32>
    %r1 = cim_graph.reduce mean %fc axes [1, 2] : tensor<1x4x16xf32> -> tensor<1xf32>
    // CHECK-NEXT: %r1 = cim_graph.reduce mean %fc axes [1, 2] : tensor<1x4x16xf32> -> tensor<1xf32>
    // GENERIC: %r1 = "cim_graph.reduce"(%fc) <{kind = #cim_graph<reduce_kind mean>, axes = array<i64: 1, 2>}> : (tensor<1x4x16xf32>) -> tensor<1xf32>
    %r2 = cim_graph.reduce max %fc axes [0] : tensor<1x4x16xf32> -> tensor<4x16xf32>
    // CHECK-NEXT: %r2 = cim_graph.reduce max %fc axes [0] : tensor<1x4x16xf32> -> tensor<4x16xf32>
    // GENERIC: %r2 = "cim_graph.reduce"(%fc) <{kind = #cim_graph<reduce_kind max>, axes = array<i64: 0>}> : (tensor<1x4x16xf32>) -> tensor<4x16xf32>
    %r3 = cim_graph.reduce min %fc axes [2, 1] keepdims : tensor<1x4x16xf32> -> tensor<1x1x1xf32>
    // CHECK-NEXT: %r3 = cim_graph.reduce min %fc axes [2, 1] keepdims : tensor<1x4x16xf32> -> tensor<1x1x1xf32>
    // GENERIC: %r3 = "cim_graph.reduce"(%fc) <{kind = #cim_graph<reduce_kind min>, axes = array<i64: 2, 1>, keepdims}> : (tensor<1x4x16xf32>) -> tensor<1x1x1xf32>
    %r4 = cim_graph.reduce prod %fc axes [1] : tensor<1x4x16xf32> -> tensor<1x16xf32>
    // CHECK-NEXT: %r4 = cim_graph.reduce prod %fc axes [1] : tensor<1x4x16xf32> -> tensor<1x16xf32>
    // GENERIC: %r4 = "cim_graph.reduce"(%fc) <{kind = #cim_graph<reduce_kind prod>, axes = array<i64: 1>}> : (tensor<1x4x16xf32>) -> tensor<1x16xf32>
    %mp = cim_graph.pool max %conv kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
    // CHECK-NEXT: %mp = cim_graph.pool max %conv kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
    // GENERIC: %mp = "cim_graph.pool"(%conv) <{kind = #cim_graph<pool_kind max>, kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
    %ap = cim_graph.pool avg %conv kernel [2, 2] strides [2, 2] pads [0, 0, 0, 0] count_include_pad : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
    // CHECK-NEXT: %ap = cim_graph.pool avg %conv kernel [2, 2] strides [2, 2] pads [0, 0, 0, 0] count_include_pad : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
    // GENERIC: %ap = "cim_graph.pool"(%conv) <{kind = #cim_graph<pool_kind avg>, kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, count_include_pad}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
    %gap = cim_graph.global_pool avg %conv : tensor<1x4x8x8xf32> -> tensor<1x4x1x1xf32>
    // CHECK-NEXT: %gap = cim_graph.global_pool avg %conv : tensor<1x4x8x8xf32> -> tensor<1x4x1x1xf32>
    // GENERIC: %gap = "cim_graph.global_pool"(%conv) <{kind = #cim_graph<pool_kind avg>}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x1x1xf32>
    %gmp = cim_graph.global_pool max %conv : tensor<1x4x8x8xf32> -> tensor<1x4x1x1xf32>
    // CHECK-NEXT: %gmp = cim_graph.global_pool max %conv : tensor<1x4x8x8xf32> -> tensor<1x4x1x1xf32>
    // GENERIC: %gmp = "cim_graph.global_pool"(%conv) <{kind = #cim_graph<pool_kind max>}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x1x1xf32>
    %cat = cim_graph.concat %mp, %ap, %dconv axis 1 : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x12x4x4xf32>
    // CHECK-NEXT: %cat = cim_graph.concat %mp, %ap, %dconv axis 1 : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x12x4x4xf32>
    // GENERIC: %cat = "cim_graph.concat"(%mp, %ap, %dconv) <{axis = 1 : i64}> : (tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>, tensor<1x4x4x4xf32>) -> tensor<1x12x4x4xf32>
    %s0, %s1, %s2 = cim_graph.split %cat axis 1 : tensor<1x12x4x4xf32> -> (tensor<1x2x4x4xf32>, tensor<1x4x4x4xf32>, tensor<1x6x4x4xf32>)
    // CHECK-NEXT: %s0, %s1, %s2 = cim_graph.split %cat axis 1 : tensor<1x12x4x4xf32> -> (tensor<1x2x4x4xf32>, tensor<1x4x4x4xf32>, tensor<1x6x4x4xf32>)
    // GENERIC: %s0, %s1, %s2 = "cim_graph.split"(%cat) <{axis = 1 : i64}> : (tensor<1x12x4x4xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x4x4x4xf32>, tensor<1x6x4x4xf32>)
    %sl = cim_graph.slice %conv starts [0, 1, 0, 0] ends [1, 4, 8, 8] steps [1, 1, 2, 3] : tensor<1x4x8x8xf32> -> tensor<1x3x4x3xf32>
    // CHECK-NEXT: %sl = cim_graph.slice %conv starts [0, 1, 0, 0] ends [1, 4, 8, 8] steps [1, 1, 2, 3] : tensor<1x4x8x8xf32> -> tensor<1x3x4x3xf32>
    // GENERIC: %sl = "cim_graph.slice"(%conv) <{starts = array<i64: 0, 1, 0, 0>, ends = array<i64: 1, 4, 8, 8>, steps = array<i64: 1, 1, 2, 3>}> : (tensor<1x4x8x8xf32>) -> tensor<1x3x4x3xf32>
    %g = cim_graph.gather %emb, %ids axis 0 : (tensor<100x16xf32>, tensor<1x4xi64>) -> tensor<1x4x16xf32>
    // CHECK-NEXT: %g = cim_graph.gather %emb, %ids axis 0 : (tensor<100x16xf32>, tensor<1x4xi64>) -> tensor<1x4x16xf32>
    // GENERIC: %g = "cim_graph.gather"(%emb, %ids) <{axis = 0 : i64}> : (tensor<100x16xf32>, tensor<1x4xi64>) -> tensor<1x4x16xf32>
    %p0 = cim_graph.pad constant %conv pads [0, 0, 1, 2, 0, 0, 3, 4] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x12x14xf32>
    // CHECK-NEXT: %p0 = cim_graph.pad constant %conv pads [0, 0, 1, 2, 0, 0, 3, 4] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x12x14xf32>
    // GENERIC: %p0 = "cim_graph.pad"(%conv) <{mode = #cim_graph<pad_mode constant>, pads = array<i64: 0, 0, 1, 2, 0, 0, 3, 4>, value = 0.000000e+00 : f32}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x12x14xf32>
    %p1 = cim_graph.pad reflect %conv pads [0, 0, 1, 1, 0, 0, 1, 1] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x10x10xf32>
    // CHECK-NEXT: %p1 = cim_graph.pad reflect %conv pads [0, 0, 1, 1, 0, 0, 1, 1] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x10x10xf32>
    // GENERIC: %p1 = "cim_graph.pad"(%conv) <{mode = #cim_graph<pad_mode reflect>, pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, value = 0.000000e+00 : f32}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x10x10xf32>
    %p2 = cim_graph.pad edge %conv pads [0, 0, 0, 1, 0, 0, 0, 1] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x8x10xf32>
    // CHECK-NEXT: %p2 = cim_graph.pad edge %conv pads [0, 0, 0, 1, 0, 0, 0, 1] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x8x10xf32>
    // GENERIC: %p2 = "cim_graph.pad"(%conv) <{mode = #cim_graph<pad_mode edge>, pads = array<i64: 0, 0, 0, 1, 0, 0, 0, 1>, value = 0.000000e+00 : f32}> : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x10xf32>
    %ex = cim_graph.expand %gap : tensor<1x4x1x1xf32> -> tensor<2x4x8x8xf32>
    // CHECK-NEXT: %ex = cim_graph.expand %gap : tensor<1x4x1x1xf32> -> tensor<2x4x8x8xf32>
    // GENERIC: %ex = "cim_graph.expand"(%gap) : (tensor<1x4x1x1xf32>) -> tensor<2x4x8x8xf32>
    func.return
    // CHECK-NEXT: func.return
  }
  // CHECK-NEXT: }
}
// CHECK-NEXT: }
// GENERIC: }) {cim_graph.source = #cim_graph.source<"models/tiny.onnx">, test.dims = #cim_graph.source<"models/tiny.onnx", batch = 2, sequence = 8>, test.no_file = #cim_graph.source<"">, test.no_file_dims = #cim_graph.source<"", batch = 1>} : () -> ()
