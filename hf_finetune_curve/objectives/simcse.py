"""``simcse``: unsupervised SimCSE (Gao et al. 2021), dropout as the only noise, in-batch negatives."""

from ._spec import ObjectiveSpec

SPEC = ObjectiveSpec(
    name="simcse", display="SimCSE", colour="#AB63FA", order=20,
    description="unsupervised SimCSE: each text paired with itself, dropout as noise, in-batch negatives "
                "(MultipleNegativesRankingLoss)",
    learning_rate=2e-5,
    learning_rate_why="2e-5 over 1e-4 (validation log R² 0.307 vs 0.264, +0.042 [-0.034, +0.110]); batch 64 and "
                      "inputs of 32 tokens as in the SimCSE paper (benchmarks/choose_recipe.py)",
    engine="sentence", loss="simcse",
    options=("text_unit", "simcse_batch_size", "simcse_max_seq_length"),
    card_rows=(("texts per SimCSE step (in-batch negatives + 1)", "{simcse_batch_size}"),),
)
