"""Readers of released files (MathVista, MATH-Vision, TabMWP, Geometry3K, ARO, What'sUp, generic json/parquet) into
`Problem`s, and `datasets.load_dataset`: the one loader of a configured set (through its benchmark)."""
