"""The pure core: policy models, rule normalisation and the planner. No I/O here."""
