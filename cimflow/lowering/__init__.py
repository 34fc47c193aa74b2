"""The lowering of allocated cim_tile functions to cim_meta schedules
(``convert-tile-to-meta``): the rules of what moves and computes where, and
the buffer allocator."""
