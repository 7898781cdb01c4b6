"""Jinja2 templates of the Hub cards that ``hf-curve push`` writes.

This folder is the top-level ``model_cards/`` of the source tree; ``pyproject.toml`` maps it into
the wheel as the ``hf_finetune_curve.model_cards`` package so the templates ship with the library.
"""
