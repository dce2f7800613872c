"""The real-format loader on files written here, its fallbacks and rejections, and the generator."""

from __future__ import annotations

import json

import pytest

from tenfold.core.errors import InputError
from tenfold.data.whoiswho import GeneratorConfig, generate_ind, load_ind
from tenfold.ind.metrics import weighted_auc_map


def _write(folder, papers, train, valid=None, raw=None):
    folder.mkdir(exist_ok=True)
    (folder / "pid_to_info_all.json").write_text(json.dumps(papers))
    (folder / "train_author.json").write_text(raw if raw is not None else json.dumps(train))
    if valid is not None:
        (folder / "ind_valid_author.json").write_text(json.dumps(valid))
    return folder


PAPERS = {"p1": {"title": "a", "authors": [{"name": "X Y", "org": "U"}], "venue": "V", "year": 2020},
          "p2": {"title": "b", "authors": [], "venue": "V"},
          "p3": {"title": "c", "authors": [{"name": "X Y"}]}}


def test_generated_files_load_and_perfect_scores_score_one(tmp_path):
    stats = generate_ind(tmp_path, seed=3, config=GeneratorConfig(n_train=5, n_valid=3, min_papers=10, max_papers=14))
    data = load_ind(tmp_path)
    assert stats["synthetic"] and len(data.train) == 5 and len(data.valid) == 3 and not data.warnings
    labels = {a.aid: a.labels for a in data.valid.values()}
    assert all(a.outliers is not None for a in data.valid.values())
    if any(0 in v.values() for v in labels.values()):
        assert weighted_auc_map(labels, {k: {p: float(y) for p, y in v.items()} for k, v in labels.items()}).wauc == 1.0
    again = tmp_path / "again"
    generate_ind(again, seed=3, config=GeneratorConfig(n_train=5, n_valid=3, min_papers=10, max_papers=14))
    assert (again / "pid_to_info_all.json").read_text() == (tmp_path / "pid_to_info_all.json").read_text()


def test_missing_paper_falls_back_or_is_rejected_in_strict_mode(tmp_path):
    f = _write(tmp_path, PAPERS, {"A": {"name": "X Y", "normal_data": ["p1", "p9"], "outliers": ["p2"]}})
    data = load_ind(f)
    assert data.papers["p9"]["title"] == "" and any("'p9'" in w for w in data.warnings)
    with pytest.raises(InputError, match="p9"):
        load_ind(f, strict=True)


def test_papers_without_authors_or_org_get_empty_fields(tmp_path):
    data = load_ind(_write(tmp_path, PAPERS, {"A": {"name": "X Y", "normal_data": ["p1", "p3"], "outliers": ["p2"]}}))
    assert data.papers["p2"]["authors"] == [] and data.papers["p3"]["authors"][0]["org"] == ""
    assert any("'p2' has no authors" in w for w in data.warnings)


def test_duplicate_ids_are_rejected_naming_the_id(tmp_path):
    raw = '{"A": {"name": "X", "normal_data": ["p1"], "outliers": []}, "A": {"name": "Y", "normal_data": [], "outliers": []}}'
    with pytest.raises(InputError, match="duplicate id 'A'"):
        load_ind(_write(tmp_path, PAPERS, None, raw=raw))


def test_paper_both_normal_and_outlier_is_rejected(tmp_path):
    with pytest.raises(InputError, match="'p1' both"):
        load_ind(_write(tmp_path, PAPERS, {"A": {"name": "X Y", "normal_data": ["p1"], "outliers": ["p1"]}}))


def test_non_utf8_bytes_are_replaced_and_the_record_named(tmp_path):
    f = _write(tmp_path, PAPERS, {"A": {"name": "X Y", "normal_data": ["p1"], "outliers": ["p2"]}})
    raw = (f / "pid_to_info_all.json").read_bytes().replace(b'"title": "a"', b'"title": "caf\xe9"')
    (f / "pid_to_info_all.json").write_bytes(raw)
    data = load_ind(f)
    assert data.papers["p1"]["title"] == "caf\ufffd"
    assert any("non-UTF-8" in w and "'p1'" in w for w in data.warnings)


def test_missing_folder_or_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        load_ind(tmp_path / "nope")
    with pytest.raises(InputError, match="pid_to_info_all"):
        load_ind(tmp_path)
