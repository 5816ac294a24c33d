"""LightningModules: the cross-encoder teacher and the students."""
