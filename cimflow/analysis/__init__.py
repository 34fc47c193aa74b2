"""Analyses and cost models the passes share: how tilings map onto arrays
(``tile_mapping``), how pipelined segments split into bands (``blocking``),
the replicating strategies' allocation machinery (``allocation``), the
dual-mode segment cost model (``dual_mode_model``), the latency lower bound
(``lower_bound``) and PIMCOMP's crossbar accounting (``mapping_report``).

Nothing here rewrites IR; the passes in :mod:`cimflow.passes` call these.
"""
