"""Stage 1, the data: a priced corpus and the splits every curve point shares.

- :mod:`~hf_finetune_curve.data.corpus`: read texts with a numeric target, validate them, report what was dropped;
- :mod:`~hf_finetune_curve.data.sample_data`: the embedded default corpus (synthetic car-auction listings);
- :mod:`~hf_finetune_curve.data.subsets`: the held-out probe test split and the nested finetune subsets.
"""
