"""The training engine: configuration, the loop, run folders, recipes and the method battery."""

DEVICES = ("auto", "cpu", "cuda")  # where a stage computes; auto: CUDA when there is one (free of imports: the CLI)
