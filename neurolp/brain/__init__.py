"""Allen Brain Observatory natural scenes: download, cache reading, stimuli."""
