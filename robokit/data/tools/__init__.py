"""Dataset tools behind `robokit dataset ...`: check, info, convert (v2.1 -> v3.0), merge, split,
delete episodes, recompute stats. Each writes crash-safely: a new dataset is built in a temporary
folder beside the destination and renamed into place when complete."""
