"""Benchmarks: one module per set a run can load, prompt, score and report (`base.Benchmark`), each registered by
name in `reasoner.registry`.

    worlds      the synthetic visual-math worlds (`source: synthetic`), e.g. a run's held-out set
    perception  the rendered compositional world (`source: perception`), scored per family beside chance
    problems    a problems file (`source: file`); perception items in a file are scored as perception
    mathvista   MathVista testmini (+ mathvista_query: the official zero-shot query)
    mathvision  MATH-Vision testmini, by its own rule-based evaluation
    scoring     the scoring every benchmark shares (the one scorer, predictions files, scores.json)
    metrics     accuracy, breakdowns, standard errors, paired and above-chance tests
"""
