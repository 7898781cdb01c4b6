"""Stage 5, the Hub: a finished run published as model repos and a curve dataset repo.

- :mod:`~hf_finetune_curve.hub.model_card`: the model and dataset cards;
- :mod:`~hf_finetune_curve.hub.publish`: the repos and their uploads.
"""
