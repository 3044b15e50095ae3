"""Token cancel-out: removing a token from a model's input (zero vector, [MASK], attention mask, marginalisation over MLM candidates), and restorability under a masked LM."""
