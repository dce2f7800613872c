"""Data loaders: real formats from small files the tests write, and the installed real sets."""

from __future__ import annotations

import pytest
import torch

from tenfold.core.errors import InputError, UnknownNameError
from tenfold.data.images import load_digits
from tenfold.data.movielens import load_atomic, read_atomic, recbole_ml100k_dir
from tenfold.data.registry import all_datasets, get_dataset
from tenfold.data.text import load_corpus, load_python_topics, load_text_file


def test_registry_describes_each_dataset_and_rejects_unknown_names():
    names = {d.name for d in all_datasets()}
    assert {"digits", "python-docs", "python-topics", "ml-100k"} <= names
    for d in all_datasets():
        assert d.source and d.licence and d.loader
    with pytest.raises(UnknownNameError, match="tenfold data list"):
        get_dataset("imagenet")


def test_digits_are_real_and_split_disjointly_by_class():
    data = load_digits()
    assert data.images.shape == (1797, 1, 8, 8) and data.levels.max() == 16
    assert torch.allclose(data.images * 16, data.levels.float())
    train, valid = data.split(0.2, seed=0)
    assert len(train.labels) + len(valid.labels) == 1797
    assert set(valid.labels.tolist()) == set(range(10))
    big = load_digits(size=16)
    assert big.images.shape == (1797, 1, 16, 16)
    assert torch.equal(big.levels[:, :, ::2, ::2], data.levels)


def test_text_corpus_split_has_no_document_in_both_halves():
    corpus = load_python_topics()
    assert corpus.train and corpus.valid
    assert not set(corpus.train) & set(corpus.valid)
    assert load_corpus().n_chars > 400_000  # real English, whichever default is installed


def test_python_docs_reads_each_source_once_even_when_debian_links_its_folder_many_times(tmp_path, monkeypatch):
    import tenfold.data.text as text

    real = tmp_path / "python3.11" / "html" / "_sources"
    real.mkdir(parents=True)
    for i in range(40):
        (real / f"page{i}.rst.txt").write_text(f"page {i} " * 50)
    for alias in ("python3-doc", "python3.11-doc", "python3-dev"):
        (tmp_path / alias).symlink_to(tmp_path / "python3.11")
    monkeypatch.setattr(text, "PY_DOC_GLOB", str(tmp_path / "python3*" / "html" / "_sources" / "**" / "*.txt"))
    corpus = text.load_python_docs()
    assert len(corpus.train) + len(corpus.valid) == 40
    assert not set(corpus.train) & set(corpus.valid)


def test_wikitext_style_folder_uses_its_own_validation_file(tmp_path):
    (tmp_path / "wiki.train.raw").write_text("= A =\n\nSome train text.\n\nMore.\n")
    (tmp_path / "wiki.valid.raw").write_text("= B =\n\nValid text.\n")
    corpus = load_text_file(tmp_path)
    assert "Valid text." in "".join(corpus.valid) and "Valid text." not in "".join(corpus.train)


def test_non_utf8_text_is_a_clear_error(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\xe9\n\nabc".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_text_file(p)


def test_atomic_files_round_trip_with_typed_headers(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "tiny.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                  "u2\ti1\t4\t20\nu1\ti2\t5\t30\nu1\ti1\t3\t10\n")
    (d / "tiny.item").write_text("item_id:token\tclass:token_seq\ni1\tAction Comedy\ni2\tDrama\n")
    data = load_atomic(d)
    assert data.inter[["user_id", "item_id"]].values.tolist() == [["u1", "i1"], ["u1", "i2"], ["u2", "i1"]]
    assert data.item["class"].tolist() == ["Action Comedy", "Drama"] and data.user is None


def test_atomic_header_without_types_is_rejected(tmp_path):
    p = tmp_path / "x.inter"
    p.write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(InputError, match="name:type"):
        read_atomic(p)


@pytest.mark.skipif(recbole_ml100k_dir() is None, reason="recbole (MovieLens-100K files) not installed")
def test_movielens_100k_from_the_installed_package():
    data = load_atomic("ml-100k")
    assert len(data.inter) == 100_000
    assert data.inter["user_id"].nunique() == 943 and data.inter["item_id"].nunique() == 1682


def test_protein_split_keeps_a_repeated_sequence_once_so_validation_never_holds_a_training_sequence(tmp_path):
    from tenfold.data.fasta import load_fasta

    seqs = ["MKV", "MAL", "MKV", "MGG", "MAL", "MST", "MKV", "MWW"]  # MKV x3, MAL x2: 5 distinct
    (tmp_path / "p.fasta").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    p = load_fasta(tmp_path / "p.fasta", valid_every=2)
    assert p.duplicates_dropped == 3 and sorted(p.train + p.valid) == sorted(set(seqs))
    assert not set(p.train) & set(p.valid) and p.ids == ["s0", "s1", "s3", "s5", "s7"]
