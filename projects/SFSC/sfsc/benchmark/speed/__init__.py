"""Speed benchmarks: SFSC training steps, and the compatibility evaluator against FastReID."""
