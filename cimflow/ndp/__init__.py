"""LLM decoding on a GPU with near-data-processing DIMMs (Hermes, HPCA 2025).

Hot neurons (the frequently active rows and columns of the FFN and QKV weight
matrices) are computed on the GPU; cold ones inside the DIMMs that store them.
The modules here hold the heterogeneous system description, activation
statistics, the offline partition, the online predictor, the window-based
remapping and the per-token performance model.
"""
