"""Problem data, grouped by job (each layer imports only those below it; see docs/ARCHITECTURE.md):

    stage/    a stage's training data: builders, selection, cache, preflight, contamination guard
    sets/     readers of released files, and the one loader of a configured set
    worlds/   the rendered worlds: synthetic visual math and the compositional perception world
    records/  the Problem type, problems files, the bridge to the scorer
"""
