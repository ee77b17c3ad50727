"""Training: ``run`` (the one door, stages), ``loop`` (one run), ``state`` (checkpointed position),
``components`` (what a run is built from), ``signals``, ``monitor``, ``config``."""
