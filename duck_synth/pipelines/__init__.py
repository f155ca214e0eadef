"""Pipelines: versioned lists of steps (a duck_synth model generating, a user's PyTorch model
scoring, a SQL transform, a validation), or a split routing calls to other pipelines; deployed
by name and called with infer(), every call logged.

One module per stage: ``steps`` (what a step or a split is, checked when it is saved),
``versions`` (the catalog rows: every change a new version, deploy/undeploy), ``runner`` (a
version's steps over an Arrow table, splits and shadows), ``infer`` (one call: its input, its
time-out, its log, its result), ``logs`` (the inference log and its retention), and
``user_models`` (registering and scoring a user's torch.export program).
"""
