"""Packing several documents into a row changes the layout of a batch, never its loss or gradients."""

import numpy as np
import pytest

from mgpt.runtime.vocab import Vocab
from mgpt.train import model
from mgpt.train.config import GPTConfig
from mgpt.train.data import default_data_path, encode, read_documents, split
from mgpt.train.packing import best_fit, pack
from mgpt.train.trainer import TrainOptions, train

DOCS = ["kaya", "jo", "alexandrina", "emma", "b", "olivia", "liam", "christopherson", "mia", "x"]


def test_best_fit_places_every_document_once_within_the_rows():
    lengths = np.random.default_rng(0).integers(1, 17, size=200)
    row, start, fill = best_fit(lengths, 16)
    assert max(fill) <= 16 and sum(fill) == lengths.sum()
    for r in range(len(fill)):  # the documents of a row tile it from 0 without overlap
        spans = sorted((start[i], start[i] + lengths[i]) for i in np.flatnonzero(row == r))
        assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and spans[-1][1] == fill[r]
    assert len(fill) < 200 * 0.6  # rows are shared


@pytest.mark.parametrize("n_layer,block_size", [(1, 8), (2, 16)])
def test_a_packed_batch_has_the_padded_batchs_loss_and_gradients(n_layer, block_size):
    vocab = Vocab.from_documents(DOCS)
    config = GPTConfig(vocab.size, n_layer, 16, 4, block_size)
    data = encode(DOCS, vocab, block_size)
    lengths = data.weights.sum(axis=1).astype(np.int64)
    T = int(lengths.max())
    flat = model.init_params(config, 3)
    params = model.views(flat, config)
    g_pad, g_pack = np.zeros_like(flat), np.zeros_like(flat)
    padded = model.loss_and_grads(params, model.views(g_pad, config), config, data.tokens[:, :T],
                                  data.tokens[:, 1 : T + 1], data.weights[:, :T])
    inputs, targets, weights, positions, mask = pack(data.tokens, lengths, block_size, data.weights)
    assert inputs.shape[0] < len(DOCS) and weights.sum() == lengths.sum()
    packed = model.loss_and_grads(params, model.views(g_pack, config), config, inputs, targets, weights,
                                  packed=(positions, mask))
    assert packed == pytest.approx(padded, abs=1e-12)
    np.testing.assert_allclose(g_pack, g_pad, rtol=0, atol=1e-12)


def test_training_with_packing_follows_training_without():
    docs = read_documents(default_data_path())[:3000]
    train_docs, val_docs = split(docs, 0.05)
    opts = dict(steps=40, batch_size=16, lr=0.01)
    plain = train(train_docs, val_docs, GPTConfig(1, block_size=16), TrainOptions(**opts))
    packed = train(train_docs, val_docs, GPTConfig(1, block_size=16), TrainOptions(**opts, pack=True))
    assert np.max(np.abs(plain.flat - packed.flat)) < 1e-9  # the same steps, rounded differently
    assert packed.val_loss == pytest.approx(plain.val_loss, abs=1e-9)
