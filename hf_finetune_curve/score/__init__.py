"""Stage 3, scoring: how much price information each checkpoint's embeddings carry.

- :mod:`~hf_finetune_curve.score.embed`: embed the corpus with a checkpoint, cached on disk;
- :mod:`~hf_finetune_curve.score.probe`: the XGBoost price probe, scored on held-out prices (what the
  ``evaluate`` metric runs: it imports neither torch nor transformers);
- :mod:`~hf_finetune_curve.score.baselines`: a bag-of-words baseline scored with the same probe.

``samples.parquet`` (the Space's maps) belongs to the Space: :mod:`hf_finetune_curve.space.samples`.
"""
