"""Models: video encoders (registry in :mod:`vidssl.models.encoders`) and shared heads."""
