"""A stage's training data: the builders (`builders`: reference / distilled / self-distilled SFT targets, pass-rate
bands of GRPO problems), the one selection pipeline, their fingerprinted cache, the prompt-length preflight, and the
contamination guard against evaluation sets."""
