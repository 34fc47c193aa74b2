// RUN: xdsl-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

// Every verifier error of cim_graph, one case per split chunk, each checked
// for its exact message, in order. A few cases check parse errors
// (--parsing-diagnostics): unknown enum cases and malformed custom syntax.

// CHECK: 'cim_graph.weight' needs a non-empty name
%w = cim_graph.weight "" : tensor<4xf32>

// -----

// CHECK: expected a static shape, got tensor<?x4xf32>
%w = cim_graph.weight "w" : tensor<?x4xf32>

// -----

// CHECK: memref<4xf32> should be of base attribute tensor
%w = cim_graph.weight "w" : memref<4xf32>

// -----

// CHECK: 'cim_graph.constant' holds more than 4096 elements; large tensors must be cim_graph.weight
%c = cim_graph.constant dense<1.000000e+00> : tensor<4097xf32>

// -----

// CHECK: 'cim_graph.constant' value type tensor<2xf32> differs from result type tensor<3xf32>
%c = "cim_graph.constant"() <{value = dense<1.000000e+00> : tensor<2xf32>}> : () -> tensor<3xf32>

// -----

// CHECK: 'cim_graph.constant' expects a dense elements value
%c = cim_graph.constant 1.000000e+00 : f32

// -----

// CHECK: 'cim_graph.conv' takes a 4-D input and weight
%x = "test.op"() : () -> tensor<3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' weight must be a cim_graph.weight (weights stay in the arrays)
%x, %w = "test.op"() : () -> (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>)
%y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' needs 2 strides, 2 dilations and 4 pads
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_graph.conv %x, %w strides [1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' strides and dilations must be positive, pads non-negative
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_graph.conv %x, %w strides [0, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' strides and dilations must be positive, pads non-negative
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [1, -1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' channels do not match: input 3, weight [4, 2, 3, 3], groups 1
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x2x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' channels do not match: input 4, weight [4, 1, 3, 3], groups 2
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x1x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 2 : (tensor<1x4x8x8xf32>, tensor<4x1x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' channels do not match: input 6, weight [4, 2, 3, 3], groups 3
%x = "test.op"() : () -> tensor<1x6x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x2x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 3 : (tensor<1x6x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' channels do not match: input 3, weight [4, 3, 3, 3], groups 0
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 0 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' bias must have shape [4]
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%b = cim_graph.weight "b" : tensor<3xf32>
%y = cim_graph.conv %x, %w, %b strides [1, 1] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' result shape [1, 4, 8, 8] does not match the inferred shape [1, 4, 6, 6]
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.conv' result shape [1, 4, 8, 8] does not match the inferred shape [1, 4, 4, 4]
%x = "test.op"() : () -> tensor<1x3x8x8xf32>
%w = cim_graph.weight "w" : tensor<4x3x3x3xf32>
%y = cim_graph.conv %x, %w strides [2, 2] pads [1, 1, 1, 1] dilations [1, 1] groups 1 : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>

// -----

// CHECK: 'cim_graph.linear' takes a 2-D weight
%x = "test.op"() : () -> tensor<1x4x16xf32>
%w = cim_graph.weight "w" : tensor<2x16x8xf32>
%y = cim_graph.linear %x, %w : (tensor<1x4x16xf32>, tensor<2x16x8xf32>) -> tensor<1x4x8xf32>

// -----

// CHECK: 'cim_graph.linear' weight must be a cim_graph.weight
%x, %w = "test.op"() : () -> (tensor<1x4x16xf32>, tensor<16x8xf32>)
%y = cim_graph.linear %x, %w : (tensor<1x4x16xf32>, tensor<16x8xf32>) -> tensor<1x4x8xf32>

// -----

// CHECK: 'cim_graph.linear' input inner size 32 does not match weight [16, 8]
%x = "test.op"() : () -> tensor<1x4x32xf32>
%w = cim_graph.weight "w" : tensor<16x8xf32>
%y = cim_graph.linear %x, %w : (tensor<1x4x32xf32>, tensor<16x8xf32>) -> tensor<1x4x8xf32>

// -----

// CHECK: 'cim_graph.linear' input inner size 16 does not match weight [16, 8]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%w = cim_graph.weight "w" : tensor<16x8xf32>
%y = cim_graph.linear %x, %w transpose_weight : (tensor<1x4x16xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.linear' bias must have shape [8]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%w = cim_graph.weight "w" : tensor<16x8xf32>
%b = cim_graph.weight "b" : tensor<16xf32>
%y = cim_graph.linear %x, %w, %b : (tensor<1x4x16xf32>, tensor<16x8xf32>, tensor<16xf32>) -> tensor<1x4x8xf32>

// -----

// CHECK: 'cim_graph.linear' result shape [1, 4, 16] does not match the inferred shape [1, 4, 8]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%w = cim_graph.weight "w" : tensor<16x8xf32>
%y = cim_graph.linear %x, %w : (tensor<1x4x16xf32>, tensor<16x8xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.matmul' operand shapes [1, 4, 16] and [8, 4] do not multiply
%a, %b = "test.op"() : () -> (tensor<1x4x16xf32>, tensor<8x4xf32>)
%y = cim_graph.matmul %a, %b : (tensor<1x4x16xf32>, tensor<8x4xf32>) -> tensor<1x4x4xf32>

// -----

// CHECK: 'cim_graph.matmul' operand shapes [2, 4, 16] and [3, 16, 4] do not multiply
%a, %b = "test.op"() : () -> (tensor<2x4x16xf32>, tensor<3x16x4xf32>)
%y = cim_graph.matmul %a, %b : (tensor<2x4x16xf32>, tensor<3x16x4xf32>) -> tensor<2x4x4xf32>

// -----

// CHECK: 'cim_graph.matmul' operand shapes [16] and [16, 4] do not multiply
%a, %b = "test.op"() : () -> (tensor<16xf32>, tensor<16x4xf32>)
%y = cim_graph.matmul %a, %b : (tensor<16xf32>, tensor<16x4xf32>) -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.matmul' result shape [4, 4] does not match the inferred shape [2, 4, 4]
%a, %b = "test.op"() : () -> (tensor<2x4x16xf32>, tensor<16x4xf32>)
%y = cim_graph.matmul %a, %b : (tensor<2x4x16xf32>, tensor<16x4xf32>) -> tensor<4x4xf32>

// -----

// CHECK: 'cim_graph.unary' result type tensor<4xf16> differs from input type tensor<4xf32>
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_graph.unary relu %x : tensor<4xf32> -> tensor<4xf16>

// -----

// CHECK: Expected `relu`, `sigmoid`, `tanh`, `erf`, `exp`, `log`, `sqrt`, `reciprocal`, `neg`, `abs`, `gelu`, `gelu_tanh`, `silu`, `softplus`, `floor`, `ceil`, `round`, `cos`, `sin`, or `not`.
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_graph.unary swish %x : tensor<4xf32> -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.binary' operand shapes [4, 3] and [4, 2] do not broadcast
%a, %b = "test.op"() : () -> (tensor<4x3xf32>, tensor<4x2xf32>)
%y = cim_graph.binary add %a, %b : (tensor<4x3xf32>, tensor<4x2xf32>) -> tensor<4x3xf32>

// -----

// CHECK: 'cim_graph.binary' result shape [4, 3] does not match the inferred shape [2, 4, 3]
%a, %b = "test.op"() : () -> (tensor<4x3xf32>, tensor<2x1x3xf32>)
%y = cim_graph.binary mul %a, %b : (tensor<4x3xf32>, tensor<2x1x3xf32>) -> tensor<4x3xf32>

// -----

// CHECK: 'cim_graph.binary less' must produce an i1 tensor
%a, %b = "test.op"() : () -> (tensor<4xf32>, tensor<4xf32>)
%y = cim_graph.binary less %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.binary equal' must produce an i1 tensor
%a, %b = "test.op"() : () -> (tensor<4xi64>, tensor<4xi64>)
%y = cim_graph.binary equal %a, %b : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>

// -----

// CHECK: 'cim_graph.binary' result element type differs from its operands'
%a, %b = "test.op"() : () -> (tensor<4xf32>, tensor<4xf32>)
%y = cim_graph.binary add %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xi1>

// -----

// CHECK: Expected attribute i1 but got f32
%c, %x = "test.op"() : () -> (tensor<4xf32>, tensor<4xf32>)
%y = cim_graph.where %c, %x, %x : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.where' operand shapes do not broadcast
%c, %x, %z = "test.op"() : () -> (tensor<4xi1>, tensor<3xf32>, tensor<f32>)
%y = cim_graph.where %c, %x, %z : (tensor<4xi1>, tensor<3xf32>, tensor<f32>) -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.where' result shape [4] does not match the inferred shape [2, 4]
%c, %x, %z = "test.op"() : () -> (tensor<4xi1>, tensor<2x1xf32>, tensor<f32>)
%y = cim_graph.where %c, %x, %z : (tensor<4xi1>, tensor<2x1xf32>, tensor<f32>) -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.cast' result shape [4] does not match the inferred shape [2, 2]
%x = "test.op"() : () -> tensor<2x2xi64>
%y = cim_graph.cast %x : tensor<2x2xi64> -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.clip' result type differs from input
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_graph.clip %x min 0.000000e+00 max 6.000000e+00 : tensor<4xf32> -> tensor<2x2xf32>

// -----

// CHECK: 'cim_graph.clip' min exceeds max
%x = "test.op"() : () -> tensor<4xf32>
%y = cim_graph.clip %x min 6.000000e+00 max 0.000000e+00 : tensor<4xf32> -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.softmax' result type differs from input
%x = "test.op"() : () -> tensor<2x4xf32>
%y = cim_graph.softmax %x axis -1 : tensor<2x4xf32> -> tensor<2x4xf16>

// -----

// CHECK: 'cim_graph.softmax' axis out of range
%x = "test.op"() : () -> tensor<2x4xf32>
%y = cim_graph.softmax %x axis 2 : tensor<2x4xf32> -> tensor<2x4xf32>

// -----

// CHECK: 'cim_graph.softmax' axis out of range
%x = "test.op"() : () -> tensor<2x4xf32>
%y = cim_graph.softmax %x axis -3 : tensor<2x4xf32> -> tensor<2x4xf32>

// -----

// CHECK: 'cim_graph.layer_norm' axis out of range
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<16xf32>
%y = cim_graph.layer_norm %x, %g axis 3 epsilon 1.000000e-05 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.layer_norm' result type differs from input
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<16xf32>
%y = cim_graph.layer_norm %x, %g axis -1 epsilon 1.000000e-05 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>

// -----

// CHECK: 'cim_graph.layer_norm' scale shape [8] does not match the normalized shape [16]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<8xf32>
%y = cim_graph.layer_norm %x, %g axis -1 epsilon 1.000000e-05 : (tensor<1x4x16xf32>, tensor<8xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.layer_norm' scale shape [4] does not match the normalized shape [4, 16]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<4xf32>
%y = cim_graph.layer_norm %x, %g axis 1 epsilon 1.000000e-05 : (tensor<1x4x16xf32>, tensor<4xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.layer_norm' epsilon must be positive
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<16xf32>
%y = cim_graph.layer_norm %x, %g axis -1 epsilon 0.000000e+00 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.rms_norm' axis out of range
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<16xf32>
%y = cim_graph.rms_norm %x, %g axis -4 epsilon 1.000000e-06 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.rms_norm' scale shape [4] does not match the normalized shape [16]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<4xf32>
%y = cim_graph.rms_norm %x, %g axis -1 epsilon 1.000000e-06 : (tensor<1x4x16xf32>, tensor<4xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.rms_norm' epsilon must be positive
%x = "test.op"() : () -> tensor<1x4x16xf32>
%g = cim_graph.weight "g" : tensor<16xf32>
%y = cim_graph.rms_norm %x, %g axis -1 epsilon -1.000000e-06 : (tensor<1x4x16xf32>, tensor<16xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.reduce' axes [3] must be distinct and in [0, 3)
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.reduce sum %x axes [3] : tensor<1x4x16xf32> -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.reduce' axes [-1] must be distinct and in [0, 3)
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.reduce sum %x axes [-1] : tensor<1x4x16xf32> -> tensor<1x4xf32>

// -----

// CHECK: 'cim_graph.reduce' axes [1, 1] must be distinct and in [0, 3)
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.reduce max %x axes [1, 1] : tensor<1x4x16xf32> -> tensor<1x16xf32>

// -----

// CHECK: 'cim_graph.reduce' result shape [1, 4, 1] does not match the inferred shape [1, 4]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.reduce mean %x axes [2] : tensor<1x4x16xf32> -> tensor<1x4x1xf32>

// -----

// CHECK: 'cim_graph.reduce' result shape [1, 4] does not match the inferred shape [1, 4, 1]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.reduce mean %x axes [2] keepdims : tensor<1x4x16xf32> -> tensor<1x4xf32>

// -----

// CHECK: 'cim_graph.pool' takes a 4-D input, 2 kernel sizes, 2 strides and 4 pads
%x = "test.op"() : () -> tensor<4x8x8xf32>
%y = cim_graph.pool max %x kernel [2, 2] strides [2, 2] pads [0, 0, 0, 0] : tensor<4x8x8xf32> -> tensor<4x4x4xf32>

// -----

// CHECK: 'cim_graph.pool' takes a 4-D input, 2 kernel sizes, 2 strides and 4 pads
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.pool max %x kernel [2, 2] strides [2, 2] pads [0, 0] : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>

// -----

// CHECK: 'cim_graph.pool' kernel and strides must be positive, pads non-negative
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.pool avg %x kernel [0, 2] strides [2, 2] pads [0, 0, 0, 0] : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>

// -----

// CHECK: 'cim_graph.pool' result shape [1, 4, 8, 8] does not match the inferred shape [1, 4, 4, 4]
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.pool max %x kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>

// -----

// CHECK: Expected `max`, or `avg`.
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.pool min %x kernel [2, 2] strides [2, 2] pads [0, 0, 0, 0] : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>

// -----

// CHECK: 'cim_graph.global_pool' takes an N x C x ... input
%x = "test.op"() : () -> tensor<1x4xf32>
%y = cim_graph.global_pool avg %x : tensor<1x4xf32> -> tensor<1x4xf32>

// -----

// CHECK: 'cim_graph.global_pool' result shape [1, 4] does not match the inferred shape [1, 4, 1, 1]
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.global_pool avg %x : tensor<1x4x8x8xf32> -> tensor<1x4xf32>

// -----

// CHECK: 'cim_graph.reshape' must keep the element count and type
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.reshape %x : tensor<1x4x8x8xf32> -> tensor<1x128xf32>

// -----

// CHECK: 'cim_graph.reshape' must keep the element count and type
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.reshape %x : tensor<1x4x8x8xf32> -> tensor<1x256xf16>

// -----

// CHECK: 'cim_graph.transpose' perm [0, 0, 1] is not a permutation of 3 axes
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.transpose %x perm [0, 0, 1] : tensor<1x4x16xf32> -> tensor<1x1x4xf32>

// -----

// CHECK: 'cim_graph.transpose' perm [1, 0] is not a permutation of 3 axes
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.transpose %x perm [1, 0] : tensor<1x4x16xf32> -> tensor<4x1xf32>

// -----

// CHECK: 'cim_graph.transpose' result shape [1, 4, 16] does not match the inferred shape [1, 16, 4]
%x = "test.op"() : () -> tensor<1x4x16xf32>
%y = cim_graph.transpose %x perm [0, 2, 1] : tensor<1x4x16xf32> -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.concat' needs at least one input
%y = cim_graph.concat axis 0 : () -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.concat' axis out of range
%a, %b = "test.op"() : () -> (tensor<2x4xf32>, tensor<2x4xf32>)
%y = cim_graph.concat %a, %b axis 2 : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x8xf32>

// -----

// CHECK: 'cim_graph.concat' inputs differ outside the concatenation axis
%a, %b = "test.op"() : () -> (tensor<2x4xf32>, tensor<3x4xf32>)
%y = cim_graph.concat %a, %b axis 1 : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x8xf32>

// -----

// CHECK: 'cim_graph.concat' inputs differ outside the concatenation axis
%a, %b = "test.op"() : () -> (tensor<2x4xf32>, tensor<2x4x1xf32>)
%y = cim_graph.concat %a, %b axis 1 : (tensor<2x4xf32>, tensor<2x4x1xf32>) -> tensor<2x8xf32>

// -----

// CHECK: 'cim_graph.concat' result shape [2, 8] does not match the inferred shape [2, 7]
%a, %b = "test.op"() : () -> (tensor<2x4xf32>, tensor<2x3xf32>)
%y = cim_graph.concat %a, %b axis 1 : (tensor<2x4xf32>, tensor<2x3xf32>) -> tensor<2x8xf32>

// -----

// CHECK: 'cim_graph.split' axis out of range or no results
%x = "test.op"() : () -> tensor<2x4xf32>
%a, %b = cim_graph.split %x axis 2 : tensor<2x4xf32> -> (tensor<2x2xf32>, tensor<2x2xf32>)

// -----

// CHECK: 'cim_graph.split' axis out of range or no results
%x = "test.op"() : () -> tensor<2x4xf32>
cim_graph.split %x axis 1 : tensor<2x4xf32> -> ()

// -----

// CHECK: 'cim_graph.split' results differ from the input outside the axis
%x = "test.op"() : () -> tensor<2x4xf32>
%a, %b = cim_graph.split %x axis 1 : tensor<2x4xf32> -> (tensor<2x2xf32>, tensor<1x2xf32>)

// -----

// CHECK: 'cim_graph.split' pieces sum to 5, not 4
%x = "test.op"() : () -> tensor<2x4xf32>
%a, %b = cim_graph.split %x axis 1 : tensor<2x4xf32> -> (tensor<2x2xf32>, tensor<2x3xf32>)

// -----

// CHECK: 'cim_graph.slice' needs one start, end and step per dimension
%x = "test.op"() : () -> tensor<4x8xf32>
%y = cim_graph.slice %x starts [0] ends [4, 8] steps [1, 1] : tensor<4x8xf32> -> tensor<4x8xf32>

// -----

// CHECK: 'cim_graph.slice' bounds [0, 9) step 1 are invalid for a dimension of 8
%x = "test.op"() : () -> tensor<4x8xf32>
%y = cim_graph.slice %x starts [0, 0] ends [4, 9] steps [1, 1] : tensor<4x8xf32> -> tensor<4x9xf32>

// -----

// CHECK: 'cim_graph.slice' bounds [3, 1) step 1 are invalid for a dimension of 4
%x = "test.op"() : () -> tensor<4x8xf32>
%y = cim_graph.slice %x starts [3, 0] ends [1, 8] steps [1, 1] : tensor<4x8xf32> -> tensor<0x8xf32>

// -----

// CHECK: 'cim_graph.slice' bounds [-1, 4) step 1 are invalid for a dimension of 4
%x = "test.op"() : () -> tensor<4x8xf32>
%y = cim_graph.slice %x starts [-1, 0] ends [4, 8] steps [1, 1] : tensor<4x8xf32> -> tensor<5x8xf32>

// -----

// CHECK: 'cim_graph.slice' bounds [0, 8) step 0 are invalid for a dimension of 8
%x = "test.op"() : () -> tensor<4x8xf32>
%y = cim_graph.slice %x starts [0, 0] ends [4, 8] steps [1, 0] : tensor<4x8xf32> -> tensor<4x8xf32>

// -----

// CHECK: 'cim_graph.slice' result shape [4, 4] does not match the inferred shape [4, 3]
%x = "test.op"() : () -> tensor<4x8xf32>
%y = cim_graph.slice %x starts [0, 0] ends [4, 8] steps [1, 3] : tensor<4x8xf32> -> tensor<4x4xf32>

// -----

// CHECK: 'cim_graph.gather' axis out of range
%t, %i = "test.op"() : () -> (tensor<100x16xf32>, tensor<1x4xi64>)
%y = cim_graph.gather %t, %i axis 2 : (tensor<100x16xf32>, tensor<1x4xi64>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.gather' indices must be integers
%t, %i = "test.op"() : () -> (tensor<100x16xf32>, tensor<1x4xf32>)
%y = cim_graph.gather %t, %i axis 0 : (tensor<100x16xf32>, tensor<1x4xf32>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.gather' result shape [1, 4, 16] does not match the inferred shape [100, 1, 4]
%t, %i = "test.op"() : () -> (tensor<100x16xf32>, tensor<1x4xi64>)
%y = cim_graph.gather %t, %i axis 1 : (tensor<100x16xf32>, tensor<1x4xi64>) -> tensor<1x4x16xf32>

// -----

// CHECK: 'cim_graph.pad' needs 8 non-negative pads
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.pad constant %x pads [1, 1, 1, 1] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x10x10xf32>

// -----

// CHECK: 'cim_graph.pad' needs 4 non-negative pads
%x = "test.op"() : () -> tensor<8x8xf32>
%y = cim_graph.pad edge %x pads [0, -1, 0, 1] value 0.000000e+00 : tensor<8x8xf32> -> tensor<8x8xf32>

// -----

// CHECK: 'cim_graph.pad' result shape [1, 4, 10, 10] does not match the inferred shape [1, 4, 9, 10]
%x = "test.op"() : () -> tensor<1x4x8x8xf32>
%y = cim_graph.pad reflect %x pads [0, 0, 1, 1, 0, 0, 0, 1] value 0.000000e+00 : tensor<1x4x8x8xf32> -> tensor<1x4x10x10xf32>

// -----

// CHECK: Expected `constant`, `reflect`, or `edge`.
%x = "test.op"() : () -> tensor<8x8xf32>
%y = cim_graph.pad wrap %x pads [0, 0, 0, 0] value 0.000000e+00 : tensor<8x8xf32> -> tensor<8x8xf32>

// -----

// CHECK: 'cim_graph.expand' cannot broadcast [1, 3] to [2, 4]
%x = "test.op"() : () -> tensor<1x3xf32>
%y = cim_graph.expand %x : tensor<1x3xf32> -> tensor<2x4xf32>

// -----

// CHECK: 'cim_graph.expand' cannot broadcast [2, 4] to [4]
%x = "test.op"() : () -> tensor<2x4xf32>
%y = cim_graph.expand %x : tensor<2x4xf32> -> tensor<4xf32>

// -----

// CHECK: string literal expected
builtin.module attributes {cim_graph.source = #cim_graph.source<models>} {
}

// -----

// CHECK: #cim_graph.source dimension 'batch' must be a positive integer
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx", batch = 0>} {
}

// -----

// CHECK: #cim_graph.source dimension 'sequence' must be a positive integer
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx", batch = 1, sequence = -8>} {
}

// -----

// CHECK: Expected integer literal
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx", batch = true>} {
}

// -----

// CHECK: identifier expected
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx", "batch" = 1>} {
}

// -----

// CHECK: 'cim_graph.layer_norm' bias shape [3, 5] does not match the normalized shape [8]
%x = "test.op"() : () -> tensor<2x8xf32>
%g = cim_graph.weight "g" : tensor<8xf32>
%b = cim_graph.weight "b" : tensor<3x5xf32>
%y = cim_graph.layer_norm %x, %g, %b axis -1 epsilon 1.0e-05 : (tensor<2x8xf32>, tensor<8xf32>, tensor<3x5xf32>) -> tensor<2x8xf32>

// -----

// CHECK: 'cim_graph.binary' operands have different element types
%a = "test.op"() : () -> tensor<4xf32>
%b = "test.op"() : () -> tensor<4xi64>
%y = cim_graph.binary add %a, %b : (tensor<4xf32>, tensor<4xi64>) -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.binary and' takes i1 operands
%a = "test.op"() : () -> tensor<4xf32>
%y = cim_graph.binary and %a, %a : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>

// -----

// CHECK: 'cim_graph.where' operands and results must share one element type, got f16, f32, i64
%c = "test.op"() : () -> tensor<4xi1>
%a = "test.op"() : () -> tensor<4xf32>
%b = "test.op"() : () -> tensor<4xi64>
%y = cim_graph.where %c, %a, %b : (tensor<4xi1>, tensor<4xf32>, tensor<4xi64>) -> tensor<4xf16>

// -----

// CHECK: 'cim_graph.conv' window does not fit the padded input
%x = "test.op"() : () -> tensor<1x4x2x2xf32>
%w = cim_graph.weight "w" : tensor<4x4x3x3xf32>
%y = cim_graph.conv %x, %w strides [1, 1] pads [0, 0, 0, 0] dilations [1, 1] groups 1 : (tensor<1x4x2x2xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x0x0xf32>

// -----

// CHECK: 'cim_graph.pool' window does not fit the padded input
%x = "test.op"() : () -> tensor<1x4x2x2xf32>
%y = cim_graph.pool max %x kernel [3, 3] strides [1, 1] pads [0, 0, 0, 0] : tensor<1x4x2x2xf32> -> tensor<1x4x0x0xf32>

// -----

// CHECK: 'cim_graph.transpose' operands and results must share one element type, got f16, f32
%x = "test.op"() : () -> tensor<2x3xf32>
%y = cim_graph.transpose %x perm [1, 0] : tensor<2x3xf32> -> tensor<3x2xf16>

// -----

// CHECK: 'cim_graph.linear' input must have rank >= 1
%x = "test.op"() : () -> tensor<f32>
%w = cim_graph.weight "w" : tensor<4x4xf32>
%y = cim_graph.linear %x, %w : (tensor<f32>, tensor<4x4xf32>) -> tensor<4xf32>

// -----

// CHECK: #cim_graph.source dimension 'batch' is given twice
builtin.module attributes {cim_graph.source = #cim_graph.source<"m.onnx", batch = 1, batch = 2>} {
}
