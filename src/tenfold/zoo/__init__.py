"""Small real models trained here and cached under $TENFOLD_HOME/zoo (`tenfold zoo list|build`).

Each module registers its entries with `tenfold.zoo.registry.register_model`; modules import heavy
libraries (transformers, diffusers) only inside their build functions.
"""
