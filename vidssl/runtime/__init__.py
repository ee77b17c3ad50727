"""Process-level plumbing shared by training, evaluation and tracking, importing nothing of
vidssl but :mod:`vidssl.errors`: distributed helpers (:mod:`~vidssl.runtime.dist`), device and
autocast choice (:mod:`~vidssl.runtime.device`), the progress bar
(:mod:`~vidssl.runtime.progress`) and the optimiser, its schedule and the guarded update step
(:mod:`~vidssl.runtime.optim`)."""
