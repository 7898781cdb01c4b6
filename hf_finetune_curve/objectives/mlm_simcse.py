"""``mlm-simcse``: adapt, then align: the MLM checkpoint of the same size, then unsupervised SimCSE."""

from ._spec import ObjectiveSpec

SPEC = ObjectiveSpec(
    name="mlm-simcse", display="MLM→SimCSE", colour="#FF6692", order=30,
    description="adapt, then align: the MLM checkpoint of the same size, then unsupervised SimCSE on the "
                "same subset (each stage the size's full recipe)",
    learning_rate=2e-5,
    learning_rate_why="its SimCSE stage takes SimCSE's 2e-5 (not swept separately); its MLM stage is the mlm "
                      "point of the same size",
    engine="sentence", loss="simcse", starts_from="mlm",
    options=("text_unit", "simcse_batch_size", "simcse_max_seq_length"),
    card_rows=(("texts per SimCSE step (in-batch negatives + 1)", "{simcse_batch_size}"),),
)
