"""Models: video encoders (registry in :mod:`vidssl.models.encoders`), every projection /
prediction head (:mod:`vidssl.models.heads`), checkpoint files (:mod:`vidssl.models.checkpoint`)
and optical flow (:mod:`vidssl.models.flow`)."""
