"""A BERT-base-shaped encoder in plain torch, with Hugging Face's long module names
(``encoder.layer.11.attention.self.query``): the table that was 204 columns wide."""

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = (f(x).view(b, s, self.heads, d // self.heads).transpose(1, 2) for f in (self.query, self.key,
                                                                                          self.value))
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return y.transpose(1, 2).reshape(b, s, d)


class SelfOutput(nn.Module):
    def __init__(self, dim: int, inner: int | None = None):
        super().__init__()
        self.dense = nn.Linear(inner or dim, dim)
        self.LayerNorm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h, x):
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self = SelfAttention(dim, heads)
        self.output = SelfOutput(dim)

    def forward(self, x):
        return self.output(self.self(x), x)


class Intermediate(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(dim, inner)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, x):
        return self.intermediate_act_fn(self.dense(x))


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int, inner: int):
        super().__init__()
        self.attention = Attention(dim, heads)
        self.intermediate = Intermediate(dim, inner)
        self.output = SelfOutput(dim, inner)

    def forward(self, x):
        a = self.attention(x)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, layers: int, dim: int, heads: int, inner: int):
        super().__init__()
        self.layer = nn.ModuleList(Layer(dim, heads, inner) for _ in range(layers))

    def forward(self, x):
        for layer in self.layer:
            x = layer(x)
        return x


class Embeddings(nn.Module):
    def __init__(self, vocab: int, dim: int, positions: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(positions, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.LayerNorm = nn.LayerNorm(dim)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos)
                              + self.token_type_embeddings(torch.zeros_like(ids)))


class BertModel(nn.Module):
    def __init__(self, vocab: int = 30522, dim: int = 768, layers: int = 12, heads: int = 12, inner: int = 3072):
        super().__init__()
        self.embeddings = Embeddings(vocab, dim, 512)
        self.encoder = Encoder(layers, dim, heads, inner)
        self.pooler = nn.Linear(dim, dim)

    def forward(self, ids):
        h = self.encoder(self.embeddings(ids))
        return torch.tanh(self.pooler(h[:, 0]))
