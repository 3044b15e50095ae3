"""Data: local files and hub datasets as TextDatasets, tokenisation, batching."""
