"""Reference rankers trained on the plugin's served features, for `profile-features evaluate` and the
examples: a PyTorch two-tower retrieval model (`rankers.two_tower`).

Not part of the Feast plugin (`profile_features` never imports this package at import time); its
dependencies come with the `evaluation` extra (torch).
"""
