// RUN: cim-opt %s --split-input-file -p 'cim-allocate{target=tiny mip_gap=0 dataflows=layer check_staging=false}' | filecheck %s
// RUN: cim-opt %s --split-input-file -p 'cim-allocate{target=tiny mip_gap=0 check_staging=false}' | filecheck %s --check-prefix=PIPE
// RUN: cim-opt %s --split-input-file -p 'cim-allocate{target=tiny mip_gap=0 dataflows=layer}' | filecheck %s --check-prefix=STAGE
// RUN: cim-opt %S/Inputs/allocate_matmul.mlir --split-input-file -p 'cim-allocate{target="%S/Inputs/tiny_dynamic.toml" mip_gap=0 dataflows=layer}' | filecheck %s --check-prefix=MATMUL
// RUN: cim-opt %S/Inputs/allocate_stream_input.mlir -p 'cim-allocate{target="%S/Inputs/tiny_slow_dram.toml" mip_gap=0 dataflows=layer}' | filecheck %s --check-prefix=INPUTS
// RUN: cim-opt %S/Inputs/allocate_stream_input.mlir -p 'cim-allocate{target=tiny mip_gap=0 dataflows=layer}' | filecheck %s --check-prefix=NO-INPUTS

// The first RUN keeps every segment in layer dataflow, as the hand
// derivations below assume, and the MILP's staging unchecked. The second
// lets segments run pipelined too: in 4 batch bands the exp's result, a
// model output, could live in no ring of the global buffer, so the model
// prices its bands as streaming to DRAM, as the lowering does, and keeps
// segment 0 in layer dataflow (before the model read the lowering's ring
// rule it ran the bands, which the simulator found slower and the pass
// dropped); b.w is still prefetched. The third checks the staging by simulation (the default):
// without the buffer the lowering loads b.w from DRAM and programs it onto
// the 4 arrays segment 0 leaves free while the exp runs, as the staged copy
// would be loaded, and the switch to compute mode is saved: the run is one
// cycle shorter, so the pass drops the buffer and says so.

// cim-allocate on `tiny` (8 arrays of 32 x 32, 8 outputs per array; memory
// mode: 256 B and 4 B/cycle per array; global buffer 16 B/cycle; DRAM
// 8 B/cycle after 20 cycles): the segments are given; per segment a MILP
// (HiGHS) chooses each weight's copies and the memory-mode arrays, here a
// `weights` buffer that prefetches the next segment's weights while this
// one computes, in the layout compute mode reads, so that the next segment
// switches those arrays to compute mode in place instead of loading and
// programming the weights.

// Memory mode wins. b.w (32 x 32 weights = 1024 B, 4 arrays) starts
// segment 1: from DRAM it loads in 20 + 1024 / 8 = 148 cycles and is
// programmed in max(32 row writes, 2 + 1024 / 16 = 66 on the bus) = 66;
// staged in 4 memory arrays, segment 1 only switches them. Segment 0's
// critical path is the exp branch: y (8192 B) loaded from DRAM (1044
// cycles), exp on the vector units (2050), its result stored (1044), so the
// staging's 148 DRAM cycles hide in it, and a copy of a.w (4 arrays) would
// shorten a path that is not critical. The 4 free arrays become a weights
// buffer; a.w keeps one copy (ties go to fewer arrays). In segment 1, b.w
// keeps one copy too: a second would cut its 4 vectors' MVMs from 10 + 3 * 8
// = 34 to 18 cycles but take 2 + 1024 / 16 = 66 to stream its weights over
// the bus to its arrays.
builtin.module {
  func.func @prefetch_wins(%x: tensor<4x32xf32>, %y: tensor<4x2048xf32>) -> (tensor<4x32xf32>, tensor<4x2048xf32>) {
    %a = cim_tile.mvm %x weight "a.w" layout kn tiling <k = 32, n = 32, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 4, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x32xf32>
    %e = cim_tile.vector segment 0 (%y) : (tensor<4x2048xf32>) -> tensor<4x2048xf32> {
    ^bb0(%0: tensor<4x2048xf32>):
      %1 = cim_graph.unary exp %0 : tensor<4x2048xf32> -> tensor<4x2048xf32>
      cim_tile.yield %1 : tensor<4x2048xf32>
    }
    %b = cim_tile.mvm %a weight "b.w" layout kn tiling <k = 32, n = 32, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 4, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 1> mode <compute> : tensor<4x32xf32> -> tensor<4x32xf32>
    func.return %b, %e : tensor<4x32xf32>, tensor<4x2048xf32>
  }
}

// CHECK:       builtin.module attributes {cim_tile.strategy = "cim-allocate", cim_tile.predicted_cycles = {{[0-9]+}} : i64, cim_tile.solver = [{segments = array<i64: 0>, status = "optimal", nodes = {{[0-9]+}} : i64}, {segments = array<i64: 1>, status = "optimal", nodes = {{[0-9]+}} : i64}]}
// CHECK-LABEL: func.func @prefetch_wins
// CHECK-NEXT:    cim_tile.memory_buffer weights arrays 4 bytes 1024 segment 0 mode <memory>
// CHECK-NEXT:    cim_tile.mvm %x weight "a.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 1>
// CHECK:         cim_tile.mvm %a weight "b.w" {{.*}} alloc <segment = 1, copies = 1, chunks = 1>
// CHECK-NOT:     cim_tile.memory_buffer

// STAGE:       cim_tile.remark = "segment 0 stages no weights: {{[0-9]+}} simulated cycles, not {{[0-9]+}}"
// STAGE-LABEL: func.func @prefetch_wins
// STAGE-NOT:     cim_tile.memory_buffer
// STAGE:       func.func @copies_win

// PIPE-NOT:    cim_tile.remark
// PIPE-LABEL:  func.func @prefetch_wins
// PIPE-NEXT:     cim_tile.memory_buffer weights arrays 4 bytes 1024 segment 0 mode <memory>

// -----

// All compute wins. With 64 vectors a second copy of a.w (4 arrays) cuts
// its MVMs from 10 + 63 * 8 = 514 to 10 + 31 * 8 = 258 cycles on the
// critical path, plus 2 + 1024 / 16 = 66 to stream the copy's weights over
// the bus to its arrays: 190 cycles saved; the same arrays as a weights
// buffer staging b.w (512 B on 2 arrays) would save its load (84 cycles
// from DRAM) and program (2 + 512 / 16 = 34 on the bus): 118. No memory
// buffer; b.w (2 arrays) gets 4 copies in segment 1.
builtin.module {
  func.func @copies_win(%x: tensor<64x32xf32>) -> tensor<64x16xf32> {
    %a = cim_tile.mvm %x weight "a.w" layout kn tiling <k = 32, n = 32, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 4, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 1> mode <compute> : tensor<64x32xf32> -> tensor<64x32xf32>
    %b = cim_tile.mvm %a weight "b.w" layout kn tiling <k = 32, n = 16, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 2, groups_per_array = 1> alloc <segment = 1, copies = 1, chunks = 1> mode <compute> : tensor<64x32xf32> -> tensor<64x16xf32>
    func.return %b : tensor<64x16xf32>
  }
}

// CHECK-LABEL: func.func @copies_win
// CHECK-NOT:     cim_tile.memory_buffer
// CHECK:         weight "a.w" {{.*}} alloc <segment = 0, copies = 2, chunks = 1>
// CHECK:         weight "b.w" {{.*}} alloc <segment = 1, copies = 4, chunks = 1>

// -----

// A weight larger than the chip (12 arrays) streams through the arrays the
// memory buffers leave; its chunk count is recomputed for them (here none)
// and says how it streams: 3 chunks of 4 arrays alternating between the
// two halves of the 8 (one programs while the other computes), which the
// model prices faster than 2 chunks of 8 + 4 on the same arrays, and the
// simulator finds no slower. A segment of vector work only, before any
// MVM, is segment 0 as in the lowering.
builtin.module {
  func.func @streamed(%x: tensor<4x8xf32>) -> tensor<4x96xf32> {
    %r = cim_tile.vector (%x) : (tensor<4x8xf32>) -> tensor<4x8xf32> {
    ^bb0(%0: tensor<4x8xf32>):
      %1 = cim_graph.unary relu %0 : tensor<4x8xf32> -> tensor<4x8xf32>
      cim_tile.yield %1 : tensor<4x8xf32>
    }
    %y = cim_tile.mvm %r weight "big.w" layout kn tiling <k = 8, n = 96, groups = 1, rows = 32, cols = 32, bit_slices = 4, row_tiles = 1, col_tiles = 12, groups_per_array = 1> alloc <segment = 0, copies = 1, chunks = 2> mode <compute> : tensor<4x8xf32> -> tensor<4x96xf32>
    func.return %y : tensor<4x96xf32>
  }
}

// CHECK-LABEL: func.func @streamed
// CHECK:         cim_tile.vector segment 0{{ ?}}(
// CHECK:         weight "big.w" {{.*}} alloc <segment = 0, copies = 1, chunks = 3>

// On `tiny_dynamic` (tiny with array.dynamic_matmul), cim-allocate decides
// where an activation matmul runs: on a number of the segment's free arrays
// (its right operand written into them, the left operand's rows streamed
// through), or on the vector units (`matmul_arrays 0`). Both operands and
// the result are model inputs and outputs, in DRAM.
//
// Arrays win on the wide one. On the vector units: 2 x 16 x 8 outputs of 32
// products = 8192 lane operations on 2 cores x 8 lanes, 2 + 512 = 514
// cycles (its 1536 B of operands stream from DRAM in 20 + 192 = 212 meanwhile).
// On arrays: kt is 2 blocks of 32 x 8 weights, one array each (8 weights
// per array row); programming them reads its 512 B from DRAM (20 + 64 = 84
// cycles; 32 row writes meanwhile), then the 16 rows of q (1024 B) stream
// from DRAM through both arrays (20 + 128 = 148 cycles, beside 10 + 15 x 8
// = 130 cycles of MVMs): 232. With the result's store (32) the segment takes
// 264. Fewer arrays cannot hold kt at once (one array: 364).
// MATMUL: cim_tile.predicted_cycles = 264
// MATMUL: cim_tile.vector segment 0 matmul_arrays 2 (%q, %kt)

// The vector units win on the narrow one (1 x 2 outputs of 4 products):
// 22 cycles there, 42 on arrays (the operand's program and the row's MVM
// each wait for a DRAM access of 20 cycles).
// MATMUL: cim_tile.predicted_cycles = 23
// MATMUL: cim_tile.vector segment 0 matmul_arrays 0 (%q, %kt)

// An inputs buffer (Inputs/allocate_stream_input.mlir): the weight w (32
// arrays) streams through the free arrays, and every chunk's MVM reads the
// input x (256 B) again from DRAM. With DRAM at 1 B/cycle
// (Inputs/tiny_slow_dram.toml) all 8 arrays stream it in 4 chunks, each
// programmed (2048 B: 2068 cycles) then fed x (276 cycles), about 9 400
// cycles; one array in memory mode holding x (loaded once, 276 cycles)
// leaves 7 arrays, 5 chunks programmed in about 8 300 cycles, each fed x
// from that array in 66: about 8 900, so the allocation keeps x there.
// At tiny's 8 B/cycle the same reads take 52 cycles a chunk (4 chunks:
// about 1 300 cycles in all), and the fifth chunk costs more than the
// three reads saved (about 1 500): all compute.

// INPUTS-LABEL: func.func @stream_input
// INPUTS-NEXT:    cim_tile.memory_buffer inputs arrays 1 bytes 256 segment 0 mode <memory>
// INPUTS-NEXT:    cim_tile.mvm %x weight "w" {{.*}} alloc <segment = 0, copies = 1, chunks = 5>

// NO-INPUTS-LABEL: func.func @stream_input
// NO-INPUTS-NOT:     cim_tile.memory_buffer
// NO-INPUTS:         cim_tile.mvm %x weight "w" {{.*}} alloc <segment = 0, copies = 1, chunks = 4>
