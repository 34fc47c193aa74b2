// RUN: xdsl-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

// Every verifier error of cim_meta's attributes and ops, one case per split
// chunk, each checked for its exact message, in order. A few cases check
// parse errors (--parsing-diagnostics).

// CHECK: #cim_meta.arrays ranges must be non-empty, sorted and disjoint, got 2:6
%t = cim_meta.switch arrays <0:4, 2:6> to <memory> segment 0

// -----

// CHECK: #cim_meta.arrays ranges must be non-empty, sorted and disjoint, got 0:2
%t = cim_meta.switch arrays <4:6, 0:2> to <memory> segment 0

// -----

// CHECK: #cim_meta.arrays ranges must be non-empty, sorted and disjoint, got 3:3
%t = cim_meta.switch arrays <0:2, 3:3> to <memory> segment 0

// -----

// CHECK: #cim_meta.arrays ranges must be non-empty, sorted and disjoint, got 5:2
"test.op"() {a = #cim_meta.arrays<5:2>} : () -> ()

// -----

// CHECK: #cim_meta.arrays ranges must be non-empty, sorted and disjoint, got -1:2
"test.op"() {a = #cim_meta.arrays<-1:2>} : () -> ()

// -----

// CHECK: Expected integer literal
%t = cim_meta.switch arrays <> to <memory> segment 0

// -----

// CHECK: Expected `dram`, `buffer`, `memory`, or `local`.
%t = cim_meta.load "x" 16 bytes disk -> buffer segment 0

// -----

// CHECK: 'cim_meta.load' moves at least one byte
%t = cim_meta.load "x" 0 bytes dram -> buffer segment 0

// -----

// CHECK: 'cim_meta.load' source and destination are the same
%t = cim_meta.load "x" 16 bytes buffer -> buffer segment 0

// -----

// CHECK: 'cim_meta.load' names arrays exactly when it reads or writes memory-mode arrays
%t = cim_meta.load "x" 16 bytes memory -> buffer segment 0

// -----

// CHECK: 'cim_meta.load' names arrays exactly when it reads or writes memory-mode arrays
%t = cim_meta.load "x" 16 bytes dram -> buffer arrays <0:2> segment 0

// -----

// CHECK: 'cim_meta.load' segment must not be negative
%t = cim_meta.load "x" 16 bytes dram -> buffer segment -1

// -----

// CHECK: 'cim_meta.store' moves at least one byte
%t = cim_meta.store "y" -4 bytes buffer -> dram segment 0

// -----

// CHECK: 'cim_meta.store' source and destination are the same
%t = cim_meta.store "y" 16 bytes memory -> memory arrays <0:2> segment 0

// -----

// CHECK: 'cim_meta.store' names arrays exactly when it reads or writes memory-mode arrays
%t = cim_meta.store "y" 16 bytes buffer -> memory segment 0

// -----

// CHECK: 'cim_meta.store' names arrays exactly when it reads or writes memory-mode arrays
%t = cim_meta.store "y" 16 bytes buffer -> dram arrays <0:2> segment 0

// -----

// CHECK: 'cim_meta.store' segment must not be negative
%t = cim_meta.store "y" 16 bytes buffer -> dram segment -3

// -----

// CHECK: 'cim_meta.move' moves at least one byte
%t = cim_meta.move "y" 0 bytes in segment 0

// -----

// CHECK: 'cim_meta.move' segment must not be negative
%t = cim_meta.move "y" 16 bytes out segment -1

// -----

// CHECK: 'cim_meta.program' uses at least one row and column
%t = cim_meta.program "w" arrays <0:2> rows 0 cols 80 k [0, 512] n [0, 10] segment 0

// -----

// CHECK: 'cim_meta.program' uses at least one row and column
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 0 k [0, 512] n [0, 10] segment 0

// -----

// CHECK: 'cim_meta.program' k must be a non-empty [start, stop)
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [4, 4] n [0, 10] segment 0

// -----

// CHECK: 'cim_meta.program' k must be a non-empty [start, stop)
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [-1, 4] n [0, 10] segment 0

// -----

// CHECK: 'cim_meta.program' n must be a non-empty [start, stop)
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 5, 10] segment 0

// -----

// CHECK: 'cim_meta.program' segment must not be negative
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] segment -1

// -----

// CHECK: 'cim_meta.program' copies (3) must be positive and divide its 4 arrays
%t = cim_meta.program "w" arrays <0:4> rows 320 cols 80 k [0, 512] n [0, 10] in_bytes 64 copies 3 segment 0

// -----

// CHECK: 'cim_meta.program' copies (0) must be positive and divide its 2 arrays
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] copies 0 segment 0

// -----

// CHECK: 'cim_meta.program' with feed cells switches one copy in place
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] feed cells copies 2 segment 0

// -----

// CHECK: 'cim_meta.program' with feed cells streams nothing: no in_bytes, no feed_arrays
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] feed cells in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.program' with feed cells streams nothing: no in_bytes, no feed_arrays
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] feed cells feed_arrays <4:6> segment 0

// -----

// CHECK: 'cim_meta.program' stages only weights in place (feed cells)
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] source tensor feed cells segment 0

// -----

// CHECK: 'cim_meta.mvm' vectors per array must be in [1, size of v]
%t = cim_meta.mvm "w" arrays <0:2> vectors 5 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 4] input "x" output "y" segment 0

// -----

// CHECK: 'cim_meta.mvm' vectors per array must be in [1, size of v]
%t = cim_meta.mvm "w" arrays <0:2> vectors 0 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 4] input "x" output "y" segment 0

// -----

// CHECK: 'cim_meta.mvm' v must be a non-empty [start, stop)
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [4, 0] input "x" output "y" segment 0

// -----

// CHECK: 'cim_meta.mvm' n must be a non-empty [start, stop)
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [10] v [0, 1] input "x" output "y" segment 0

// -----

// CHECK: 'cim_meta.mvm' uses at least one row and column
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows -320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" segment 0

// -----

// CHECK: 'cim_meta.mvm' segment must not be negative
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" segment -1

// -----

// CHECK: 'cim_meta.vector' element_ops, in_bytes and out_bytes must not be negative
%t = cim_meta.vector "softmax" element_ops 64 inputs ["s"] outputs ["p"] attrs {} in_bytes -4 segment 0

// -----

// CHECK: 'cim_meta.vector' element_ops, in_bytes and out_bytes must not be negative
%t = cim_meta.vector "softmax" element_ops -1 inputs ["s"] outputs ["p"] attrs {} segment 0

// -----

// CHECK: 'cim_meta.vector' softmax cannot apply an activation (then): only accumulate, add, sub, mul can
%t = cim_meta.vector "softmax" element_ops 64 inputs ["s"] outputs ["p"] attrs {then = "relu"} segment 0

// -----

// CHECK: 'cim_meta.vector' then must name one of relu, clip, sigmoid, tanh, gelu, gelu_tanh, silu
%t = cim_meta.vector "accumulate" element_ops 64 inputs ["y"] outputs ["y"] attrs {then = "softmax"} segment 0

// -----

// CHECK: 'cim_meta.vector' residual is an accumulate's last input, laid out as one of rows, nchw
%t = cim_meta.vector "add" element_ops 64 inputs ["y", "s"] outputs ["y"] attrs {residual = "rows"} segment 0

// -----

// CHECK: 'cim_meta.vector' residual is an accumulate's last input, laid out as one of rows, nchw
%t = cim_meta.vector "accumulate" element_ops 64 inputs ["y", "s"] outputs ["y"] attrs {residual = "nhwc"} segment 0

// -----

// CHECK: 'cim_meta.vector' residual is an accumulate's last input, laid out as one of rows, nchw
%t = cim_meta.vector "accumulate" element_ops 64 inputs ["y"] outputs ["y"] attrs {residual = "rows"} segment 0

// -----

// The version-4 key `units` is gone (cores say whose units run the op).
// CHECK: Expected 'inputs'
%t = cim_meta.vector "softmax" element_ops 64 units 8 inputs ["s"] outputs ["p"] attrs {} segment 0

// -----

// CHECK: #cim_meta.cores ranges must be non-empty, sorted and disjoint, got 1:2
%t = cim_meta.vector "softmax" element_ops 64 inputs ["s"] outputs ["p"] attrs {} cores <0:2, 1:2> segment 0

// -----

// CHECK: 'cim_meta.vector' segment must not be negative
%t = cim_meta.vector "softmax" element_ops 64 inputs ["s"] outputs ["p"] attrs {} segment -1

// -----

// CHECK: 'cim_meta.vector' produces at least one tensor
%t = cim_meta.vector "softmax" element_ops 64 inputs ["s"] outputs [] attrs {axis = 3 : i64} segment 0

// -----

// CHECK: 3 : i64 should be of base attribute string
%t = "cim_meta.vector"() <{kind = "softmax", element_ops = 64 : i64, inputs = ["s"], outputs = [3 : i64], attrs = {}, segment = 0 : i64}> : () -> !cim_meta.token

// -----

// The version-1 spelling `output "p"` is gone.
// CHECK: Expected 'outputs'
%t = cim_meta.vector "softmax" element_ops 64 inputs ["s"] output "p" segment 0

// -----

// CHECK: 'cim_meta.switch' segment must not be negative
%t = cim_meta.switch arrays <0:2> to <compute> segment -1

// -----

// CHECK: Expected `compute`, or `memory`.
%t = cim_meta.switch arrays <0:2> to <storage> segment 0

// -----

// CHECK: 'cim_meta.segment' segment must not be negative
%t = cim_meta.segment -1

// -----

// CHECK: Expected attribute !cim_meta.token but got i32
%x = "test.op"() : () -> i32
%t = "cim_meta.segment"(%x) <{segment = 1 : i64}> : (i32) -> !cim_meta.token

// -----

// CHECK: 'cim_meta.parallel' may only hold meta-ops, got 'cim_meta.tensor'
%t = cim_meta.parallel segment 0 {
  %a = cim_meta.move "y" 16 bytes in segment 0
  cim_meta.tensor "y" : tensor<4xf32> bytes 16
}

// -----

// CHECK: 'cim_meta.parallel' segment must not be negative
%t = cim_meta.parallel segment -1 {
  %a = cim_meta.move "y" 16 bytes in segment 0
}

// -----

// CHECK: 'cim_meta.tensor' needs a non-empty name and a non-negative byte size
cim_meta.tensor "" : tensor<4xf32> bytes 16

// -----

// CHECK: 'cim_meta.tensor' needs a non-empty name and a non-negative byte size
cim_meta.tensor "x" : tensor<4xf32> bytes -16

// -----

// CHECK: 'cim_meta.constant' needs a name
cim_meta.constant "" = dense<1.0> : tensor<f32>

// -----

// CHECK: 1.000000e+00 : f32 should be of base attribute dense
cim_meta.constant "c" = 1.0 : f32

// -----

// CHECK: 'cim_meta.weight' intra_block needs rows
cim_meta.weight "w" layout nk groups 1 k 16 n 10 intra_block 4

// -----

// CHECK: 'cim_meta.weight' intra_block must be a power of two from 2, got 6
cim_meta.weight "w" layout nk groups 1 k 16 n 10 rows 8 intra_block 6

// -----

// CHECK: 'cim_meta.weight' driven needs intra_block
cim_meta.weight "w" layout nk groups 1 k 16 n 10 rows 8 driven 12

// -----

// CHECK: 'cim_meta.weight' driven must lie between rows and k
cim_meta.weight "w" layout nk groups 1 k 16 n 10 rows 8 intra_block 4 driven 4

// -----

// CHECK: 'cim_meta.weight' index_block needs rows without intra_block
cim_meta.weight "w" layout nk groups 1 k 16 n 10 rows 8 intra_block 4 index_block 4

// -----

// CHECK: 'cim_meta.weight' index_block must lie between 2 and k
cim_meta.weight "w" layout nk groups 1 k 16 n 10 rows 8 index_block 16

// -----

// CHECK: 'cim_meta.weight' holds compacted rows or columns, not both
cim_meta.weight "w" layout nk groups 1 k 16 n 10 rows 8 columns 5

// -----

// CHECK: 'cim_meta.weight' columns must be in [1, n)
cim_meta.weight "w" layout nk groups 1 k 16 n 10 columns 10

// -----

// CHECK: 'cim_meta.weight' column_row_tiles needs rows and one group
cim_meta.weight "w" layout nk groups 1 k 16 n 10 column_row_tiles [2, 1]

// -----

// CHECK: 'cim_meta.weight' column_row_tiles must be positive
cim_meta.weight "w" layout nk groups 1 k 16 n 10 rows 8 column_row_tiles [2, 0]

// -----

// CHECK: 'cim_meta.weight' needs a name
cim_meta.weight "" layout nk groups 1 k 16 n 10

// -----

// CHECK: 'cim_meta.weight' groups, k and n must be positive
cim_meta.weight "w" layout oihw groups 0 k 9 n 4

// -----

// CHECK: 'cim_meta.weight' groups, k and n must be positive
cim_meta.weight "w" layout kn groups 1 k 0 n 4

// -----

// CHECK: 'cim_meta.weight' groups, k and n must be positive
cim_meta.weight "w" layout nk groups 1 k 16 n -10

// -----

// CHECK: Expected `kn`, `nk`, or `oihw`.
cim_meta.weight "w" layout hwio groups 1 k 16 n 10

// -----

// CHECK: 'cim_meta.schedule' batch must be positive
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 0 inputs ["x"] outputs ["x"] {
  cim_meta.tensor "x" : tensor<4xf32> bytes 16
}

// -----

// CHECK: 'cim_meta.schedule' declares 'x' twice (tensors, constants and weights share one namespace, except the weight view of a tensor declared before it)
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["x"] outputs ["x"] {
  cim_meta.tensor "x" : tensor<4xf32> bytes 16
  cim_meta.tensor "x" : tensor<8xf32> bytes 32
}

// -----

// CHECK: 'cim_meta.schedule' may only hold meta-ops, got 'test.op'
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["x"] outputs ["x"] {
  cim_meta.tensor "x" : tensor<4xf32> bytes 16
  "test.op"() : () -> ()
}

// -----

// CHECK: 'cim_meta.schedule' tensor 'h' starts in memory-mode arrays but is not a schedule input
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["x"] outputs ["x"] {
  cim_meta.tensor "x" : tensor<4xf32> bytes 16
  cim_meta.tensor "h" : tensor<4xf32> bytes 16 arrays <0:1>
}

// -----

// CHECK: 'cim_meta.schedule' inputs 'k' and 'v' both start in array 1
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["k", "v"] outputs [] {
  cim_meta.tensor "k" : tensor<4xf32> bytes 16 arrays <0:2>
  cim_meta.tensor "v" : tensor<4xf32> bytes 16 arrays <1:3>
}

// -----

// CHECK: 'cim_meta.schedule' input/output 'x' is not declared
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["x"] outputs ["y"] {
  cim_meta.tensor "y" : tensor<4xf32> bytes 16
  %0 = cim_meta.load "x" 16 bytes dram -> buffer segment 0
}

// -----

// CHECK: 'cim_meta.schedule' input/output 'z' is not declared
cim_meta.schedule @main target "dynaplasia" strategy "static" batch 1 inputs ["x"] outputs ["z"] {
  cim_meta.tensor "x" : tensor<4xf32> bytes 16
}

// -----

// CHECK: 'cim_meta.load' cannot move buffer -> dram: loads move toward the arrays (dram -> memory -> buffer, memory -> local), stores away
%t = cim_meta.load "x" 16 bytes buffer -> dram segment 0

// -----

// CHECK: 'cim_meta.store' cannot move dram -> buffer: loads move toward the arrays (dram -> memory -> buffer, memory -> local), stores away
%t = cim_meta.store "x" 16 bytes dram -> buffer segment 0

// -----

// A weight may view a tensor declared before it, not the other way round.
// CHECK: 'cim_meta.schedule' declares 'w' twice (tensors, constants and weights share one namespace, except the weight view of a tensor declared before it)
cim_meta.schedule @main target "tiny" strategy "static" batch 1 inputs [] outputs [] {
  cim_meta.weight "w" layout kn groups 1 k 4 n 4
  cim_meta.tensor "w" : tensor<4xf32> bytes 4
}

// -----

// CHECK: 'cim_meta.schedule' declares 'c' twice (tensors, constants and weights share one namespace, except the weight view of a tensor declared before it)
cim_meta.schedule @main target "tiny" strategy "static" batch 1 inputs [] outputs [] {
  cim_meta.constant "c" = dense<1.0> : tensor<f32>
  cim_meta.weight "c" layout kn groups 1 k 1 n 1
}

// -----

// CHECK: 'cim_meta.constant' holds a tensor value
cim_meta.schedule @main target "tiny" strategy "static" batch 1 inputs [] outputs [] {
  cim_meta.constant "c" = dense<[1, 2]> : vector<2xi64>
}

// -----

// CHECK: 'cim_meta.load' reaches a local buffer only from memory-mode arrays (the global buffer's path to the cores is cim_meta.move)
%t = cim_meta.load "x" 16 bytes buffer -> local cores <0:1> segment 0

// -----

// CHECK: 'cim_meta.store' cannot move memory -> local: loads move toward the arrays (dram -> memory -> buffer, memory -> local), stores away
%t = cim_meta.store "x" 16 bytes memory -> local arrays <0:1> cores <0:1> segment 0

// -----

// CHECK: 'cim_meta.load' names cores exactly when it reads or writes a local buffer
%t = cim_meta.load "x" 16 bytes memory -> local arrays <0:1> segment 0

// -----

// CHECK: 'cim_meta.load' names cores exactly when it reads or writes a local buffer
%t = cim_meta.load "x" 16 bytes memory -> buffer arrays <0:1> cores <0:1> segment 0

// -----

// CHECK: 'cim_meta.store' to or from a local buffer names one core
%t = cim_meta.store "x" 16 bytes local -> memory arrays <0:1> cores <0:2> segment 0

// -----

// CHECK: Expected `in`, or `out`.
%t = cim_meta.move "y" 16 bytes across segment 0

// -----

// CHECK: 'cim_meta.mvm' streams in_bytes > 0 exactly when its feed is buffer, memory or dram
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed buffer segment 0

// -----

// CHECK: 'cim_meta.mvm' streams in_bytes > 0 exactly when its feed is buffer, memory or dram
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.mvm' names feed_arrays exactly when its feed is memory
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed memory in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.mvm' names feed_arrays exactly when its feed is memory
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed buffer feed_arrays <4:5> in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.mvm' feed_arrays and arrays must be disjoint
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed memory feed_arrays <1:3> in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.mvm' in_bytes, out_bytes and local_bytes must not be negative
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" local_bytes -1 segment 0

// -----

// CHECK: Expected `local`, `buffer`, `memory`, `dram`, or `cells`.
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed disk in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.mvm' streams in_bytes > 0 exactly when its feed is buffer, memory or dram
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed dram segment 0

// -----

// CHECK: 'cim_meta.mvm' names feed_arrays exactly when its feed is memory
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed dram feed_arrays <4:5> in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.mvm' out_to must be buffer, dram or memory, got local
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" out_to local out_bytes 16 segment 0

// -----

// CHECK: 'cim_meta.mvm' names out_arrays exactly when its out_to is memory
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" out_to memory out_bytes 16 segment 0

// -----

// CHECK: 'cim_meta.mvm' names out_arrays exactly when its out_to is memory
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" out_arrays <4:5> out_bytes 16 segment 0


// -----

// CHECK: 'cim_meta.mvm' out_arrays and arrays must be disjoint
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" out_to memory out_arrays <1:3> out_bytes 16 segment 0

// -----

// CHECK: 'cim_meta.vector' in_from must be buffer, dram or memory, got local
%t = cim_meta.vector "relu" element_ops 64 inputs ["s"] outputs ["p"] attrs {} in_from local in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.vector' names in_arrays exactly when its in_from is memory
%t = cim_meta.vector "relu" element_ops 64 inputs ["s"] outputs ["p"] attrs {} in_from memory in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.vector' names in_arrays exactly when its in_from is memory
%t = cim_meta.vector "relu" element_ops 64 inputs ["s"] outputs ["p"] attrs {} in_from dram in_arrays <0:1> in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.vector' names out_arrays exactly when its out_to is memory
%t = cim_meta.vector "relu" element_ops 64 inputs ["s"] outputs ["p"] attrs {} out_to memory out_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.program' feed must be buffer, dram or memory, got local
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] feed local segment 0

// -----

// CHECK: 'cim_meta.program' names feed_arrays exactly when its feed is memory
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] feed memory in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.program' names feed_arrays exactly when its feed is memory
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] feed_arrays <4:6> in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.program' feed_arrays and arrays must be disjoint
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] feed memory feed_arrays <1:2> in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.program' in_bytes must not be negative
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] in_bytes -1 segment 0

// -----

// CHECK: Expected `weight`, or `tensor`.
%t = cim_meta.program "w" arrays <0:2> rows 320 cols 80 k [0, 512] n [0, 10] source model segment 0

// -----

// CHECK: 'cim_meta.free' releases at least one allocation
%t = cim_meta.free [] segment 0

// -----

// CHECK: 'cim_meta.free' allocates nothing
%t = cim_meta.free [#cim_meta.place<"x" buffer>] segment 0 allocs [#cim_meta.alloc<"y" 4 bytes buffer>]

// -----

// CHECK: 'cim_meta.move' allocs, when given, are not empty
%t = cim_meta.move "y" 16 bytes in segment 0 allocs []

// -----

// CHECK: #cim_meta.alloc in local names its cores
%t = cim_meta.move "y" 16 bytes in segment 0 allocs [#cim_meta.alloc<"y" 16 bytes local>]

// -----

// CHECK: #cim_meta.alloc in memory names its arrays
%t = cim_meta.load "y" 16 bytes dram -> memory arrays <0:1> segment 0 allocs [#cim_meta.alloc<"y" 16 bytes memory cores <0:1>>]

// -----

// CHECK: #cim_meta.alloc in buffer names neither cores nor arrays
%t = cim_meta.load "y" 16 bytes dram -> buffer segment 0 allocs [#cim_meta.alloc<"y" 16 bytes buffer arrays <0:1>>]

// -----

// CHECK: #cim_meta.alloc level must be buffer, local or memory, got dram
%t = cim_meta.store "y" 16 bytes buffer -> dram segment 0 allocs [#cim_meta.alloc<"y" 16 bytes dram>]

// -----

// CHECK: #cim_meta.alloc bytes must not be negative
%t = cim_meta.load "y" 16 bytes dram -> buffer segment 0 allocs [#cim_meta.alloc<"y" -16 bytes buffer>]

// -----

// CHECK: #cim_meta.place in memory names its arrays
%t = cim_meta.free [#cim_meta.place<"y" memory>] segment 0

// -----

// CHECK: Expected 'bytes'
"test.op"() {a = #cim_meta.alloc<"y" 16 buffer>} : () -> ()

// -----

// CHECK: 'cim_meta.mvm' feed must be buffer, dram or memory, got cells
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "y" feed cells in_bytes 64 segment 0

// -----

// CHECK: 'cim_meta.vector' vectors is [v0, v1) with v0 < v1, of an accumulate over output columns (block [1, n0, n1])
%t = cim_meta.vector "accumulate" element_ops 64 inputs ["y"] outputs ["y"] attrs {vectors = array<i64: 0, 2>} segment 0

// -----

// CHECK: 'cim_meta.vector' vectors is [v0, v1) with v0 < v1, of an accumulate over output columns (block [1, n0, n1])
%t = cim_meta.vector "accumulate" element_ops 64 inputs ["y"] outputs ["y"] attrs {vectors = array<i64: 2, 2>} block [1, 0, 8] segment 0

// -----

// CHECK: 'cim_meta.vector' vectors is [v0, v1) with v0 < v1, of an accumulate over output columns (block [1, n0, n1])
%t = cim_meta.vector "relu" element_ops 64 inputs ["y"] outputs ["z"] attrs {vectors = array<i64: 0, 2>} block [1, 0, 8] segment 0

// -----

// CHECK: 'cim_meta.move' link bytes (32) must be at least its bytes (64)
%t = cim_meta.move "h" 64 bytes in cores <0:2> link_bytes 32 segment 0

// -----

// CHECK: 'cim_meta.mvm' link bytes (8) must be at least its in_bytes (512)
%t = cim_meta.mvm "w" arrays <0:2> vectors 1 rows 320 cols 80 k [0, 512] n [0, 10] v [0, 1] input "x" output "h" feed buffer in_bytes 512 in_link_bytes 8 segment 0
