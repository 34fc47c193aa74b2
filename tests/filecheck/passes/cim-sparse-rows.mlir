// RUN: cim-prune %S/../../../tools/models/resnet_tiny.onnx --pattern channel --ratio 0.5 -o %t.channel.onnx > /dev/null
// RUN: cim-opt %t.channel.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows' | filecheck %s
// RUN: cim-opt %t.channel.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows{min_saving=0.6}' | filecheck %s --check-prefix=THRESHOLD
// RUN: cim-opt %t.channel.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows,cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=META
// RUN: cim-prune %S/../../../tools/models/resnet_tiny.onnx --pattern 2:4 -o %t.nm.onnx > /dev/null
// RUN: cim-opt %t.nm.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows' | filecheck %s --check-prefix=NM
// RUN: cim-opt %t.nm.onnx -p 'convert-graph-to-tile{target=ciminus},cim-sparse-rows,cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=INTRA
// RUN: cim-prune %S/../../../tools/models/resnet_tiny.onnx --pattern block:8x4+2:4 --ratio 0.5 -o %t.flex.onnx > /dev/null
// RUN: cim-opt %t.flex.onnx -p 'convert-graph-to-tile{target=ciminus},cim-sparse-rows,cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=FLEX
// RUN: cim-opt %t.flex.onnx -p 'convert-graph-to-tile{target=ciminus},cim-sparse-rows' | filecheck %s --check-prefix=GATHER
// RUN: cim-prune %S/../../../tools/models/resnet_tiny.onnx --pattern column --ratio 0.5 -o %t.column.onnx > /dev/null
// RUN: cim-opt %t.column.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows{orientation=column}' | filecheck %s --check-prefix=COLUMN
// RUN: cim-opt %t.column.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows{orientation=best},cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=COLUMN-META
// RUN: cim-opt %t.column.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows' | filecheck %s --check-prefix=COLUMN-ROW
// RUN: cim-prune %S/../../../tools/models/resnet_tiny.onnx --pattern block:32x1 --ratio 0.5 -o %t.tall.onnx > /dev/null
// RUN: cim-opt %t.tall.onnx -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows{orientation=column}' | filecheck %s --check-prefix=TALL
// RUN: cim-prune %S/../../../tools/models/digits_mlp.onnx --dim batch=4 --pattern block:8x8 --ratio 0.5 -o %t.digits.onnx > /dev/null
// RUN: cim-opt %t.digits.onnx --dim batch=4 -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows{rearrangement=slice},cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=SLICE
// RUN: cim-opt %t.digits.onnx --dim batch=4 -p 'convert-graph-to-tile{target=tiny},cim-sparse-rows,cim-static-allocate,convert-tile-to-meta' | filecheck %s --check-prefix=PAD

// cim-sparse-rows on the committed ResNet (tools/models/resnet_tiny.onnx)
// pruned by cim-prune. With half of each convolution's input channels zero
// in every filter (channel pattern), a tiny array (8 outputs per array: 32
// columns of 4 bit slices) needs only the other half of the kh x kw rows:
// the 3 x 3 x 8 = 72-row weights hold 36 rows, the stem's 7 x 7 x 3 = 147
// rows hold 49 (one of its three input channels is left, 66.7% are zero).
// Each held weight keeps its rows in compacted_from; the rows held are
// whole channels (9 rows of a 3 x 3 window, the stem's one channel of 49),
// so an index names a channel's block (index_block). Asking for at least
// 60% fewer rows leaves the 50% ones dense (only the stem qualifies). 2:4
// zeros differ between the columns an array holds, so no row can go on
// tiny; on ciminus, whose cells pick their inputs by multiplexers, each
// group of 4 rows is held in 2 (the stem's 147 rows: 36 groups in 72 rows,
// its last 3 rows in 2). Pruned FlexBlock, half of the 8 x 4 blocks zero
// and 2:4 inside the rest, each 4-output array of ciminus drops the row
// groups of its zero blocks and holds 2 of 4 rows in the others: the stem
// holds 40 rows (its widest tile keeps the blocks of 80 rows, whose inputs
// it drives: driven 80) where 2:4 alone held 74; the 16-row fc.weight,
// whose blocks every tile keeps, drives all its rows. Its two tiles keep
// different blocks, so the core reads the inputs of the rows either needs:
// 104 of 147 (input_rows), where 2:4 alone needs all of its groups'.

// CHECK:       cim_tile.mvm {{.*}} tiling <k = 49, {{.*}} compacted_from 147 index_block 49 mode
// CHECK:       cim_tile.mvm {{.*}} tiling <k = 36, {{.*}} compacted_from 72 index_block 9 mode

// THRESHOLD:     cim_tile.mvm {{.*}} tiling <k = 49, {{.*}} compacted_from 147
// THRESHOLD:     cim_tile.mvm {{.*}} tiling <k = 72,
// THRESHOLD-NOT: compacted_from 72

// META:        cim_meta.weight "{{.*}}" layout oihw groups 1 k 147 n 8 rows 49 index_block 49{{$}}
// META:        cim_meta.weight "{{.*}}" layout oihw groups 1 k 72 n 8 rows 36 index_block 9{{$}}
// META:        cim_meta.weight "fc.weight" layout nk groups 1 k 16 n 10 rows 8{{$}}

// NM-NOT:      compacted_from

// INTRA:       cim_meta.weight "{{.*}}" layout oihw groups 1 k 147 n 8 rows 74 intra_block 4
// INTRA:       cim_meta.weight "{{.*}}" layout oihw groups 1 k 72 n 8 rows 36 intra_block 4
// INTRA:       cim_meta.weight "fc.weight" layout nk groups 1 k 16 n 10 rows 8 intra_block 4

// FLEX:        cim_meta.weight "{{.*}}" layout oihw groups 1 k 147 n 8 rows 40 intra_block 4 driven 80
// FLEX:        cim_meta.weight "{{.*}}" layout oihw groups 1 k 72 n 8 rows 24 intra_block 4 driven 48
// FLEX:        cim_meta.weight "fc.weight" layout nk groups 1 k 16 n 10 rows 8 intra_block 4{{$}}

// With half of each weight's filters pruned whole (column pattern), no
// row can go, but the columns can (orientation column or best): the arrays
// hold the 4 of 8 (stem, layer1) and 8 of 16 (layer2) and 5 of 10 (fc)
// nonzero columns, and the output stays whole (columns_from). The default
// orientation (row) leaves them dense.

// COLUMN:      cim_tile.mvm {{.*}} tiling <k = 147, n = 4, {{.*}} columns_from 8 mode {{.*}} -> tensor<256x8xf32>
// COLUMN:      cim_tile.mvm {{.*}} tiling <k = 72, n = 4, {{.*}} columns_from 8 mode

// COLUMN-META: cim_meta.weight "{{.*}}" layout oihw groups 1 k 147 n 8 columns 4{{$}}
// COLUMN-META: cim_meta.weight "{{.*}}" layout oihw groups 1 k 72 n 16 columns 8{{$}}
// COLUMN-META: cim_meta.weight "fc.weight" layout nk groups 1 k 16 n 10 columns 5{{$}}

// Half of the 32 x 1 blocks zero: on tiny's 32-row arrays each row tile of
// a weight keeps its own columns, so the stem's five row tiles (147 rows)
// hold 5 of 8 columns each, and their partial sums land on different
// outputs (misaligned_columns); the classifier's one row tile is aligned.

// TALL:        cim_tile.mvm {{.*}} tiling <k = 147, n = 5, {{.*}} columns_from 8 misaligned_columns mode
// TALL:        cim_tile.mvm {{.*}} weight "fc.weight" {{.*}} tiling <k = 16, n = 5, {{.*}} columns_from 10 mode

// COLUMN-ROW-NOT: columns_from
// COLUMN-ROW-NOT: compacted_from

// GATHER:      cim_tile.mvm {{.*}} tiling <k = 40, {{.*}} compacted_from 147 intra_block 4 driven_rows 80 input_rows 104 mode

// The committed digits MLP (tools/models/digits_mlp.onnx) with half of its
// 8 x 8 blocks pruned: fc0's four 8-output column tiles on tiny need 40, 32,
// 32 and 24 of its 64 rows. Padded to the longest (40 rows: 2 row tiles of
// 32), every column tile takes 2 arrays, all 8 of tiny's, and fc1 waits
// for a segment of its own; sliced (rearrangement=slice), each takes the
// arrays its own rows fill, 2 + 1 + 1 + 1 = 5, and fc1 programs beside it.

// SLICE:       cim_meta.weight "fc0.weight" layout kn groups 1 k 64 n 32 rows 40 index_block 8 column_row_tiles [2, 1, 1, 1]
// SLICE:       cim_meta.program "fc0.weight" arrays <0:5> {{.*}} k [0, 40] n [0, 32] {{.*}} segment 0
// SLICE:       cim_meta.program "fc1.weight" arrays <5:7> {{.*}} segment 0

// PAD:         cim_meta.weight "fc0.weight" layout kn groups 1 k 64 n 32 rows 40 index_block 8{{$}}
// PAD:         cim_meta.program "fc0.weight" arrays <0:8> {{.*}} segment 0
// PAD:         cim_meta.program "fc1.weight" arrays <0:2> {{.*}} segment 1
