"""Records: the `Problem` type (`problem`), problems files (`files`: jsonl / parquet) and the one bridge from a problem
to the scorer (`scoring.scorer_arguments`)."""
