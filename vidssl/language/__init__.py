"""Language side of vidssl: class vocabularies, attribute prompts, CLIP text concept spaces."""
