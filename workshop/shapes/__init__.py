"""The shapes world: procedurally drawn scenes with captions, the training data of the built-in ``shapes`` model."""
