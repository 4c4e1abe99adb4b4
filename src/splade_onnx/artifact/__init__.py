"""Artifact folders: the manifest and its files, integrity checks and staged writes, hub resolution, the registry."""
