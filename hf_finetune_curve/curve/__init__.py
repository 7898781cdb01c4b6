"""Stage 4, the curve: the checkpoints' scores against finetune size, and what they say.

- :mod:`~hf_finetune_curve.curve.points`: one :class:`~hf_finetune_curve.curve.points.CurvePoint` per size,
  as a table and CSV rows;
- :mod:`~hf_finetune_curve.curve.plot`: ``curve.png``, the four-panel plot;
- :mod:`~hf_finetune_curve.curve.uncertainty`: bootstrap intervals, paired deltas, seed aggregation;
- :mod:`~hf_finetune_curve.curve.fit`: saturating curves fitted to the points, and "how much data is enough"
  (built on :mod:`~hf_finetune_curve.curve.solver`, the families and the profiled least squares);
- :mod:`~hf_finetune_curve.curve.diagnostics`: paired checks of the points (hurts, not monotone) and the fit's
  warnings;
- :mod:`~hf_finetune_curve.curve.next_size`: which size to measure next (a what-if refit per candidate);
- :mod:`~hf_finetune_curve.curve.analysis`: the curve's summary in ``curve.json`` (intervals, fit, answer, verdict);
- :mod:`~hf_finetune_curve.curve.compare`: objectives side by side.
"""
