"""Training methods: each supplies its network adjustments and extra heads, its label space, its
per-epoch relabelling hook, its batch shape and its losses; the engine (vitool.engine.trainer) owns the loop.

``contract``: what the engine and a method give each other; ``registry``: methods by name (plugins
through the ``vitool.methods`` entry-point group); ``labels``: where a method's starting labels come from;
one module per method (``supervised``, ``otla``, ``experts``, ``contrast`` (DCL), ``pclhd``, ``mult``).
"""
