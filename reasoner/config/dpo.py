"""The `dpo` section of a stage (kind=dpo): the DPO objective's settings and where its pairs come from (a preference
file, or STIC pairs built from the start model's own descriptions). Kept apart from `stages`, which lists it in
`StageConfig` and exports it with the other stage sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from reasoner.config.ranges import AT_LEAST_0, POSITIVE, TOKENS, Range, ranged


class DPOReference(str, Enum):
    """The frozen model DPO's log-ratios are measured against."""

    start = "start"
    """The stage's starting model (`init`): its log-probs of every pair, computed once before training."""


class DPOPairs(str, Enum):
    """Where a dpo stage's preference pairs come from."""

    file = "file"
    """The rows of its `preference` dataset (user-provided pairs)."""
    stic = "stic"
    """STIC's image-comprehension self-training (`dpo.stic`): the stage's start model describes each image of its
    dataset (any problem set; labels unused) with a good prompt (preferred) and, drawn per image, with a bad prompt
    or on a corrupted image (dispreferred)."""


STIC_DISPREFERRED = ("bad_prompt", "color_jitter", "low_resolution")
"""How STIC makes a dispreferred description: the bad prompt on the original image, or the good prompt on the
image corrupted by a named, seeded transform (`reasoner.data.stage.stic.CORRUPTIONS`)."""


@dataclass
class STICConfig:
    """dpo.pairs=stic: how the preferred and dispreferred descriptions are made (STIC, Deng et al. 2024)."""

    good_prompt: str = "caption"
    """Prompt template of the preferred description (original image); also the prompt the pair trains on."""
    bad_prompt: str = "describe_imaginative"
    """Prompt template that invites invention (the `bad_prompt` way of making a dispreferred description)."""
    dispreferred: list[str] = field(default_factory=lambda: list(STIC_DISPREFERRED))
    """The ways of making each image's dispreferred description, one drawn per image by the stage seed:
    bad_prompt | color_jitter | low_resolution."""
    max_new_tokens: int = ranged(64, TOKENS)
    """Description budget (descriptions are decoded greedily)."""


@dataclass
class DPOConfig:
    """kind=dpo: direct preference optimisation on the pairs of a `preference` dataset (TRL's sigmoid DPO, plus
    an NLL term on the chosen response, TRL's `rpo_alpha`). Per pair, with summed response log-probs:
    -logsigmoid(beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))) + nll_alpha * NLL(chosen),
    NLL(chosen) the chosen response's mean per-token negative log-likelihood."""

    beta: float = ranged(0.1, POSITIVE)
    """Strength of the implicit KL to the reference: the log-ratio margin is scaled by beta."""
    nll_alpha: float = ranged(0.0, AT_LEAST_0)
    """Weight of the chosen response's NLL (mean per token) added to each pair's loss (0 = pure DPO; STIC's
    regulariser on the preferred answer)."""
    reference: DPOReference = DPOReference.start
    """The reference model: start (the stage's starting model, `init`)."""
    heldout: float = ranged(0.1, Range(0, 1, high_open=True, meaning="0 = no held-out pairs"))
    """Share of the kept pairs held out of training (drawn by the stage seed) and scored at the start and the end
    (`dpo_eval/*` metrics)."""
    eval_every: int = ranged(0, Range(0, meaning="0 = only at the start and the end"))
    """Also score the held-out pairs every N steps."""
    pairs: DPOPairs = DPOPairs.file
    """file (the rows of a `preference` dataset) | stic (built from the start model's own descriptions of the
    dataset's images, `dpo.stic`)."""
    stic: STICConfig = field(default_factory=STICConfig)
    """dpo.pairs=stic: the prompts, the dispreferred ways and the description budget."""
