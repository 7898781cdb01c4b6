"""``mlm-distill``: MLM plus a term that keeps the pooled embedding close to the factory model's."""

from ._spec import ObjectiveSpec

SPEC = ObjectiveSpec(
    name="mlm-distill", display="MLM+distill", colour="#19D3F3", order=40,
    description="masked-language-model finetuning plus a distillation term that keeps each chunk's pooled, "
                "normalised embedding close to the factory model's (a frozen copy as teacher)",
    learning_rate=2e-5,
    learning_rate_why="MLM's 2e-5; distillation weight 10 over 1 (validation log R² 0.304 vs 0.281, "
                      "+0.023 [-0.028, +0.077]) (benchmarks/choose_recipe.py)",
    engine="masked-lm", loss="mlm-distill",
    options=("distill_weight",),
    card_rows=(("distillation weight", "{distill_weight:g} x (1 - cos(pooled, factory model's pooled embedding))"),),
)
