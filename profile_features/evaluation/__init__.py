"""Offline evaluation of the semantic features: ranking metrics, ranker ablations,
the cold-start slice, and the `profile-features evaluate` report."""
