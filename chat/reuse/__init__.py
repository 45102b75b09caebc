"""Answer reuse: the semantic answer cache, its precision guard and the guard's calibration.

    scope.py        what a stored answer is keyed by (embedding space, prompt version, knowledge-base
                    version, language, and for a profile-shaped answer the visitor and profile)
    selectors.py    reads: the reuse step's lookup (approved answers first, then the cache)
    services.py     writes: storing answers, counting hits, visitors' votes, blocking, invalidation, eviction
    guard.py        the precision guard (pure functions)
    calibration.py  the guard's thresholds from labelled questions (pure functions)

Approved answers are review's (`review.selectors.approved_candidates`); this package only judges
them with the same guard. Nothing here imports the pipeline.
"""
