"""The Gradio Space's deployed files (app.py, README.md, requirements.txt), shipped as package data.

`hf-curve space RUN --push` uploads them as they are (see hf_finetune_curve.space.space_files).
"""
