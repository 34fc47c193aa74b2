// RUN: cim-opt %s --split-input-file -p 'ndp-partition' | filecheck %s
// RUN: cim-opt %s --split-input-file -p 'ndp-partition' | filecheck %s --check-prefix=OPT
// RUN: cim-opt %s --split-input-file -p 'ndp-partition{system="%S/Inputs/ndp_small_gpu.toml"}' | filecheck %s --check-prefix=SMALL

// Two decoder layers, each a ReLU'd QKV (the ReLU Hermes inserts before Q, K
// and V; its 8 input elements are the neurons) and an OPT-style MLP (fc1,
// ReLU, fc2; its 16 hidden units are the neurons). ndp-partition writes on
// each block's linears which device computes each neuron (0 the GPU, j the
// j-th DIMM); Q and K share the QKV block's placement. With a GPU left room
// for 4 MLP neurons' weights, at most 4 of them are on the GPU.
builtin.module {
  func.func @decoder(%x: tensor<1x8xf32>) -> tensor<1x10xf32> {
    %h0 = cim_graph.unary relu %x : tensor<1x8xf32> -> tensor<1x8xf32>
    %wq0 = cim_graph.weight "l0.q" : tensor<8x8xf32>
    %q0 = cim_graph.linear %h0, %wq0 : (tensor<1x8xf32>, tensor<8x8xf32>) -> tensor<1x8xf32>
    %wk0 = cim_graph.weight "l0.k" : tensor<8x8xf32>
    %k0 = cim_graph.linear %h0, %wk0 : (tensor<1x8xf32>, tensor<8x8xf32>) -> tensor<1x8xf32>
    %a0 = cim_graph.binary add %q0, %k0 : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x8xf32>
    %w1 = cim_graph.weight "l0.fc1" : tensor<8x16xf32>
    %u0 = cim_graph.linear %a0, %w1 : (tensor<1x8xf32>, tensor<8x16xf32>) -> tensor<1x16xf32>
    %r0 = cim_graph.unary relu %u0 : tensor<1x16xf32> -> tensor<1x16xf32>
    %w2 = cim_graph.weight "l0.fc2" : tensor<16x8xf32>
    %d0 = cim_graph.linear %r0, %w2 : (tensor<1x16xf32>, tensor<16x8xf32>) -> tensor<1x8xf32>
    %h1 = cim_graph.unary relu %d0 : tensor<1x8xf32> -> tensor<1x8xf32>
    %wq1 = cim_graph.weight "l1.q" : tensor<8x8xf32>
    %q1 = cim_graph.linear %h1, %wq1 : (tensor<1x8xf32>, tensor<8x8xf32>) -> tensor<1x8xf32>
    %wk1 = cim_graph.weight "l1.k" : tensor<8x8xf32>
    %k1 = cim_graph.linear %h1, %wk1 : (tensor<1x8xf32>, tensor<8x8xf32>) -> tensor<1x8xf32>
    %a1 = cim_graph.binary add %q1, %k1 : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x8xf32>
    %w3 = cim_graph.weight "l1.fc1" : tensor<8x16xf32>
    %u1 = cim_graph.linear %a1, %w3 : (tensor<1x8xf32>, tensor<8x16xf32>) -> tensor<1x16xf32>
    %r1 = cim_graph.unary relu %u1 : tensor<1x16xf32> -> tensor<1x16xf32>
    %w4 = cim_graph.weight "l1.fc2" : tensor<16x8xf32>
    %d1 = cim_graph.linear %r1, %w4 : (tensor<1x16xf32>, tensor<16x8xf32>) -> tensor<1x8xf32>
    %wh = cim_graph.weight "head" : tensor<8x10xf32>
    %y = cim_graph.linear %d1, %wh : (tensor<1x8xf32>, tensor<8x10xf32>) -> tensor<1x10xf32>
    func.return %y : tensor<1x10xf32>
  }
}

// CHECK:       builtin.module attributes {ndp.system = "hermes"}
// CHECK:         cim_graph.linear %h0, %wq0 {ndp.device = array<i8: [[QKV:([0-8], ){7}[0-8]]]>, ndp.gpu_neurons = {{[0-8]}} : i64}
// CHECK:         cim_graph.linear %h0, %wk0 {ndp.device = array<i8: [[QKV]]>
// CHECK:         cim_graph.linear %a0, %w1 {ndp.device = array<i8: {{([0-8], ){15}[0-8]}}>, ndp.gpu_neurons = {{[0-9]+}} : i64}
// CHECK:         cim_graph.linear %r0, %w2 :
// CHECK:         cim_graph.linear %h1, %wq1 {ndp.device
// CHECK:         cim_graph.linear %a1, %w3 {ndp.device
// CHECK:         cim_graph.linear %d1, %wh :

// SMALL:       builtin.module attributes {ndp.system = "ndp_small_gpu"}
// SMALL:         cim_graph.linear %a0, %w1 {ndp.device = array<i8: {{([0-8], ){15}[0-8]}}>, ndp.gpu_neurons = {{[0-4]}} : i64}

// -----

// An OPT-style layer: Q and K read the input itself, no ReLU, so there is no
// QKV block in the graph; the decoder still has one (Hermes prices its
// neurons as sparse), and its placement, one device per input element, goes
// on the layer's MLP block as ndp.qkv_device.
builtin.module {
  func.func @opt_layer(%x: tensor<1x8xf32>) -> tensor<1x10xf32> {
    %wq = cim_graph.weight "q" : tensor<8x8xf32>
    %q = cim_graph.linear %x, %wq : (tensor<1x8xf32>, tensor<8x8xf32>) -> tensor<1x8xf32>
    %wk = cim_graph.weight "k" : tensor<8x8xf32>
    %k = cim_graph.linear %x, %wk : (tensor<1x8xf32>, tensor<8x8xf32>) -> tensor<1x8xf32>
    %a = cim_graph.binary add %q, %k : (tensor<1x8xf32>, tensor<1x8xf32>) -> tensor<1x8xf32>
    %w1 = cim_graph.weight "fc1" : tensor<8x16xf32>
    %u = cim_graph.linear %a, %w1 : (tensor<1x8xf32>, tensor<8x16xf32>) -> tensor<1x16xf32>
    %r = cim_graph.unary relu %u : tensor<1x16xf32> -> tensor<1x16xf32>
    %w2 = cim_graph.weight "fc2" : tensor<16x8xf32>
    %d = cim_graph.linear %r, %w2 : (tensor<1x16xf32>, tensor<16x8xf32>) -> tensor<1x8xf32>
    %wh = cim_graph.weight "head" : tensor<8x10xf32>
    %y = cim_graph.linear %d, %wh : (tensor<1x8xf32>, tensor<8x10xf32>) -> tensor<1x10xf32>
    func.return %y : tensor<1x10xf32>
  }
}

// OPT:         cim_graph.linear %x, %wq :
// OPT:         cim_graph.linear %a, %w1 {ndp.device = array<i8: {{([0-8], ){15}[0-8]}}>, ndp.gpu_neurons = {{[0-9]+}} : i64, ndp.qkv_device = array<i8: {{([0-8], ){7}[0-8]}}>}
