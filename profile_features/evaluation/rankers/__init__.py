"""Reference rankers trained on the plugin's served features, for `profile-features evaluate` and the
examples: a PyTorch two-tower retrieval model (`profile_features.evaluation.rankers.two_tower`).

Not part of the Feast plugin: nothing imports this package when the plugin is imported (only an
evaluation run does); its dependencies come with the `evaluation` extra (torch).
"""
