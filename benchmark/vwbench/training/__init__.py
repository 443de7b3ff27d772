"""Concept training: many words per step on a frozen model, Adam, optional delta-ball projection."""

from vwbench.training.init_words import choose_init_words
from vwbench.training.trainer import TrainConfig, TrainedWords, train_words

__all__ = ["TrainConfig", "TrainedWords", "choose_init_words", "train_words"]
