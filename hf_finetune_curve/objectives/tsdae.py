"""``tsdae``: a denoising auto-encoder on the sentence embedding (Wang et al. 2021)."""

from ._spec import ObjectiveSpec

SPEC = ObjectiveSpec(
    name="tsdae", display="TSDAE", colour="#00A15A", order=10,
    description="TSDAE: denoising auto-encoder on the sentence embedding (60% of words deleted, "
                "sentence-transformers' DenoisingAutoEncoderLoss)",
    learning_rate=2e-5, learning_rate_why="2e-5, not swept (close to the TSDAE paper's 3e-5)",
    engine="sentence", loss="tsdae",
    options=("tsdae_deletion_ratio", "text_unit"),
    card_rows=(("words deleted (TSDAE noise)", "{tsdae_deletion_ratio:g}"),),
)
