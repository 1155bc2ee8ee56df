"""Small embedded data shipped with neurolp (see README.md in this folder for provenance)."""
