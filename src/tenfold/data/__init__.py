"""Real-format loaders and documented generators, one module per kind of data.

Each module registers its datasets with `tenfold.data.registry.register_dataset`; `tenfold data list`
shows them all. Modules here import only light dependencies at the top.
"""
