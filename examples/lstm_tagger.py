"""A part-of-speech-style tagger: token ids -> Embedding -> LSTM (a tuple output) -> Linear.

    convshape trace examples/lstm_tagger.py --input 2x16:int64
"""

from torch import nn


class LSTMTagger(nn.Module):
    def __init__(self, vocab_size: int = 1000, embedding_dim: int = 32, hidden_dim: int = 64, tagset_size: int = 12):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.tag = nn.Linear(2 * hidden_dim, tagset_size)

    def forward(self, tokens):
        out, (h, c) = self.lstm(self.embed(tokens))
        return self.tag(out).log_softmax(dim=-1)
