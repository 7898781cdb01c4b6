"""``supervised``: the encoder trained on the subset's prices, the label-aware ceiling."""

from ._spec import ObjectiveSpec

SPEC = ObjectiveSpec(
    name="supervised", display="supervised", colour="#EF553B", order=50,
    description="supervised: the pooled embedding regressed onto the standardised log price of the subset's "
                "probe-training rows (a linear head fitted in closed form first, then trained with the "
                "encoder); the label-aware ceiling, not an unsupervised recipe",
    learning_rate=1e-4,
    learning_rate_why="1e-4 over 2e-5 (validation log R² 0.336 vs 0.295, +0.041 [-0.014, +0.096]); the top of "
                      "the two rates tried (benchmarks/choose_recipe.py)",
    engine="sentence", loss="supervised", uses_labels=True,
    card_rows=(("labels", "the prices of its finetune subset (probe-training rows; held-out rows never), as "
                          "standardised log price"),),
)
