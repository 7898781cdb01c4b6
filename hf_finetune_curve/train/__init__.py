"""Stage 2, training: the finetuned checkpoints of the curve.

- :mod:`~hf_finetune_curve.train.models`: resolve a model id or path to a loaded SentenceTransformer;
- :mod:`~hf_finetune_curve.train.objectives`: the finetuning objectives (MLM, TSDAE, SimCSE) and their names;
- :mod:`~hf_finetune_curve.train.recipe`: every curve point's training recipe, planned before anything trains;
- :mod:`~hf_finetune_curve.train.trainer`: the one training engine, transformers' ``Trainer`` extended;
- :mod:`~hf_finetune_curve.train.finetune`: masked-LM finetuning, one independent run per size;
- :mod:`~hf_finetune_curve.train.branching`: the branching schedule, one main run with a cooldown branch per size;
- :mod:`~hf_finetune_curve.train.sentence_objectives`: TSDAE and SimCSE curve points;
- :mod:`~hf_finetune_curve.train.checkpoint`: save a checkpoint and prove the saved copy embeds the same.
"""
