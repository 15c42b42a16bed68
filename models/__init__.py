"""Torch models (CNN, LSTM, Transformer, DQN) and the memory-managed model registry. Not built yet."""
