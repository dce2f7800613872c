"""Sweep, tokenizer, FASTA loader and CLI tests on tiny inputs written here."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from plm_sequences import SEQS
from typer.testing import CliRunner

from tenfold.core.errors import InputError
from tenfold.data.fasta import load_fasta, read_fasta
from tenfold.plmscale.experiment import synthetic_runs
from tenfold.plmscale.fit import ParametricLaw
from tenfold.plmscale.sweep import (
    AminoAcidTokenizer,
    SweepConfig,
    flops_per_token,
    mask_tokens,
    pack,
    read_runs_csv,
    run_sweep,
)


def _fasta(tmp_path, seqs=SEQS):
    path = tmp_path / "tiny.fasta"
    path.write_text("".join(f">sp|P{i:05d}|T{i} test protein\n{s[:10]}\n{s[10:]}\n" for i, s in enumerate(seqs)))
    return path


def test_fasta_reader_joins_lines_and_keeps_ids(tmp_path):
    recs = read_fasta(_fasta(tmp_path))
    assert [s for _, s in recs] == SEQS
    assert recs[0][0] == "sp|P00000|T0"


def test_letters_outside_alphabet_are_rejected(tmp_path):
    path = tmp_path / "bad.fasta"
    path.write_text(">x\nMKT1AJ\n")
    with pytest.raises(InputError, match="outside the amino-acid alphabet"):
        read_fasta(path)
    with pytest.raises(InputError, match="outside"):
        AminoAcidTokenizer().encode("MK*J")
    with pytest.raises(InputError, match="outside"):
        pack(["MKT", "AC1D"], AminoAcidTokenizer(), 4)


def test_pack_matches_per_sequence_encoding():
    tok = AminoAcidTokenizer()
    flat = [i for s in SEQS for i in tok.encode(s)]
    windows = pack(SEQS, tok, 16)
    assert windows.flatten().tolist() == flat[: windows.numel()]
    assert tok.decode(tok.encode(SEQS[0])) == SEQS[0]


def test_bert_masking_touches_only_chosen_positions():
    import torch

    tok = AminoAcidTokenizer()
    x = pack(SEQS, tok, 16)
    inputs, labels = mask_tokens(x, tok, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert torch.equal(inputs[~chosen], x[~chosen])
    assert torch.equal(labels[chosen], x[chosen])
    assert 0.05 < chosen.float().mean() < 0.3


def test_sweep_logs_runs_and_resumes_after_interruption(tmp_path):
    proteins = load_fasta(_fasta(tmp_path), valid_every=4)
    cfg = SweepConfig(budgets=(2e6, 4e6), shapes=((8, 1), (16, 1)), budget_shapes=(), seq_len=16, batch_size=4,
                      valid_windows=4)
    out = tmp_path / "sweep"
    first = run_sweep(proteins, out, cfg, max_runs=3)  # an interrupted sweep
    files = sorted((out / "runs").glob("*.json"))
    assert len(first) == 3 and len(files) == 3 and not (out / "runs.csv").exists()
    stamps = {f: f.stat().st_mtime_ns for f in files}
    rows = run_sweep(proteins, out, cfg)  # resumes: only the 5 missing runs are trained
    assert len(rows) == 8 and len(read_runs_csv(out / "runs.csv")) == 8
    assert all(f.stat().st_mtime_ns == t for f, t in stamps.items())  # finished runs are not redone
    for r in rows:
        per_token = flops_per_token(r["params"], r["layers"], r["hidden"], 16, len(AminoAcidTokenizer()))
        assert r["flops"] == pytest.approx(per_token * r["tokens"]) == pytest.approx(r["flops_exact"])
        assert r["flops_6nd"] == pytest.approx(6 * r["params"] * r["tokens"])
        assert r["budget"] <= r["flops"] < r["budget"] + per_token * 4 * 16  # the last step rounds up
        assert np.isfinite(r["loss"]) and r["epochs"] == pytest.approx(r["tokens"] / r["unique_tokens"])


def test_flops_per_token_adds_attention_and_the_output_layer():
    """The issue's numbers: 3.4x nominal at 268 non-embedding parameters, 1.4x at 9,288 (T = 128, V = 30)."""
    from tenfold.plmscale.sweep import build_model, non_embedding_params

    tok = AminoAcidTokenizer()
    for hidden, n, ratio in ((4, 268, 3.36), (24, 9288, 1.41)):
        model = build_model("clm", hidden, 1, len(tok), 128, tok)
        assert non_embedding_params(model) == n
        exact = flops_per_token(n, 1, hidden, 128, len(tok), "exact")
        assert exact == 6 * (n + 128 * hidden + 30 * hidden)
        assert exact / flops_per_token(n, 1, hidden, 128, len(tok), "6nd") == pytest.approx(ratio, abs=0.01)
    with pytest.raises(InputError, match="--flops"):
        flops_per_token(1, 1, 1, 1, 1, "4nd")


def test_six_nd_sweeps_train_on_c_over_6n_tokens(tmp_path):
    proteins = load_fasta(_fasta(tmp_path), valid_every=4)
    cfg = SweepConfig(budgets=(4e6,), shapes=((8, 1),), budget_shapes=(), objectives=("clm",), seq_len=16, batch_size=4,
                      valid_windows=4, flops="6nd")
    (row,) = run_sweep(proteins, tmp_path / "s", cfg)
    assert row["flops"] == row["flops_6nd"] and row["tokens"] == pytest.approx(4e6 / (6 * row["params"]), abs=64)


def test_job_list_run_index_and_gather(tmp_path):
    from tenfold.plmscale.cli import app

    fasta = _fasta(tmp_path)
    base = ["sweep", "--fasta", str(fasta), "--out", str(tmp_path / "s"), "--budgets", "2e6", "--shapes", "8x1,16x1",
            "--seq-len", "16", "--batch-size", "4"]
    res = CliRunner().invoke(app, [*base, "--list"])
    assert res.exit_code == 0, res.output
    jobs = [json.loads(line) for line in res.output.splitlines()]
    assert [j["index"] for j in jobs] == [0, 1, 2, 3] and len({j["id"] for j in jobs}) == 4
    res = CliRunner().invoke(app, [*base, "--run-index", "2"])  # one array task
    assert res.exit_code == 0, res.output
    assert [f.stem for f in (tmp_path / "s" / "runs").glob("*.json")] == [jobs[2]["id"]]
    res = CliRunner().invoke(app, [*base, "--run-index", "4"])
    assert res.exit_code != 0 and "out of range" in str(res.exception)
    for i in (0, 1, 3):
        assert CliRunner().invoke(app, [*base, "--run-index", str(i)]).exit_code == 0
    res = CliRunner().invoke(app, ["gather", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["runs"] == 4 and len(read_runs_csv(tmp_path / "s" / "runs.csv")) == 4


def test_run_files_of_another_configuration_are_refused(tmp_path):
    proteins = load_fasta(_fasta(tmp_path), valid_every=4)
    cfg = SweepConfig(budgets=(2e6,), shapes=((8, 1),), budget_shapes=(), objectives=("clm",), seq_len=16,
                      batch_size=4, valid_windows=4)
    run_sweep(proteins, tmp_path / "s", cfg)
    with pytest.raises(InputError, match="another sweep configuration"):
        run_sweep(proteins, tmp_path / "s", replace(cfg, lr=2e-3))


def test_cli_fit_writes_parametric_coefficients_with_intervals(tmp_path):
    from tenfold.plmscale.cli import app

    law = ParametricLaw(E=1.8, A=400.0, B=900.0, alpha=0.34, beta=0.30)
    synthetic_runs(law, np.logspace(18, 21, 4), 6, 0.002, 0)[["params", "tokens", "loss"]].to_csv(tmp_path / "r.csv", index=False)
    res = CliRunner().invoke(app, ["fit", str(tmp_path / "r.csv"), "--law", "parametric", "--out", str(tmp_path / "fit.json"),
                                   "--bootstrap", "5", "--starts", "3"])
    assert res.exit_code == 0, res.output
    fit = json.loads((tmp_path / "fit.json").read_text())
    for k in ("E", "A", "B", "alpha", "beta"):
        assert k in fit and len(fit["intervals"][k]) == 2
    res = CliRunner().invoke(app, ["plan", "--flops", "1e20", "--objective", "mlm", "--fit", str(tmp_path / "fit.json")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["params"] > 0


def test_cli_fit_rejects_csv_missing_columns(tmp_path):
    from tenfold.plmscale.cli import app

    (tmp_path / "bad.csv").write_text("params,loss\n1e6,3.0\n")
    res = CliRunner().invoke(app, ["fit", str(tmp_path / "bad.csv")])
    assert res.exit_code != 0 and "lacks columns" in str(res.exception)


def test_synthetic_protein_generator_is_seeded_and_in_alphabet():
    from tenfold.data.fasta import ALPHABET, generate_proteins

    a, b = generate_proteins(50, seed=3), generate_proteins(50, seed=3)
    assert a.train == b.train and len(a.train) + len(a.valid) == 50
    assert set("".join(a.train)) <= set(ALPHABET)


def _without_timing(rows):
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows),
                  key=lambda r: (r["objective"], r["budget"], r["hidden"]))


def test_sweep_rows_do_not_depend_on_the_number_of_workers(tmp_path):
    proteins = load_fasta(_fasta(tmp_path), valid_every=4)
    cfg = SweepConfig(budgets=(2e6,), shapes=((8, 1), (16, 1)), budget_shapes=(), seq_len=16, batch_size=4,
                      valid_windows=4)
    one = run_sweep(proteins, tmp_path / "one", cfg)
    two = run_sweep(proteins, tmp_path / "two", replace(cfg, workers=2))
    assert _without_timing(one) == _without_timing(two)


def test_budget_windows_replace_the_shared_shapes():
    cfg = SweepConfig(budgets=(1e6, 2e6), shapes=((8, 1),),
                      budget_shapes=((2e6, ((4, 1), (6, 1))), (2e6, ((6, 1), (12, 1)), "mlm")))
    assert cfg.grid("clm") == [(1e6, 8, 1), (2e6, 4, 1), (2e6, 6, 1)]
    assert cfg.grid("mlm") == [(1e6, 8, 1), (2e6, 6, 1), (2e6, 12, 1)]
    quick = SweepConfig()
    for entry in quick.budget_shapes:  # the quick windows are the grid at their budgets
        c, shapes, objs = entry[0], entry[1], [entry[2]] if len(entry) == 3 else ["clm", "mlm"]
        for o in objs:
            if len(entry) == 2 and any(len(e) == 3 and e[0] == c and e[2] == o for e in quick.budget_shapes):
                continue
            assert [(h, layer) for b, h, layer in quick.grid(o) if b == c] == list(shapes)


def test_isoflop_fit_flags_edge_minima():
    from tenfold.plmscale import fit_isoflop

    law = ParametricLaw(E=1.8, A=400.0, B=900.0, alpha=0.34, beta=0.30)
    runs = synthetic_runs(law, [1e18, 1e19], 5, 0.0, 0)  # sizes 0.1x..10x the optimum: interior minima
    low = runs["params"] < law.optimal(runs["flops"].to_numpy())[0] * 0.9  # keep only models below the optimum
    iso = fit_isoflop(runs)
    assert all(g["interior"] and g["edge"] is None for g in iso.budgets)
    edge = fit_isoflop(runs[low])
    assert all(not g["interior"] and g["edge"] == "largest" for g in edge.budgets)


def test_cli_sweep_parses_windows_and_rejects_bad_shapes(tmp_path):
    from tenfold.plmscale.cli import app

    fasta = _fasta(tmp_path)
    res = CliRunner().invoke(app, ["sweep", "--fasta", str(fasta), "--out", str(tmp_path / "r"),
                                   "--shapes", "2e6=8x1|16x1,clm@2e6=4x1|8x1", "--objectives", "clm",
                                   "--seq-len", "16", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    rows = read_runs_csv(tmp_path / "r" / "runs.csv")
    assert sorted(r["hidden"] for r in rows) == [4, 8]
    res = CliRunner().invoke(app, ["sweep", "--fasta", str(fasta), "--out", str(tmp_path / "s"), "--shapes", "8x1x2"])
    assert res.exit_code != 0 and "HIDDENxLAYERS" in str(res.exception)


def test_cli_fit_rejects_unknown_interval_method(tmp_path):
    from tenfold.plmscale.cli import app

    (tmp_path / "r.csv").write_text("params,tokens,loss\n1e6,1e9,3.0\n")
    res = CliRunner().invoke(app, ["fit", str(tmp_path / "r.csv"), "--interval", "normal"])
    assert res.exit_code != 0 and "--interval" in str(res.exception)



def _main(capsys, args) -> tuple[int, str]:
    """Exit code and stderr of the console entry point (the CLI's one error boundary)."""
    from tenfold.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--quiet", "plmscale", *args])
    return stop.value.code, capsys.readouterr().err


BAD_CSVS = {"empty": b"", "binary": bytes(range(255, 0, -1)) * 4, "header only": b"tokens,loss,params\n",
            "truncated": b'tokens,loss,params\n"100,1e6\n', "text in a number column": b"tokens,loss,params\n1e3,x,3\n"}


@pytest.mark.parametrize("kind", sorted(BAD_CSVS))
def test_cli_refuses_bad_csv_files_in_one_line_naming_the_file(tmp_path, capsys, kind):
    """fit and transfer (either curve) exit 2 with one line that names the file, never a traceback."""
    bad = tmp_path / "bad.csv"
    bad.write_bytes(BAD_CSVS[kind])
    good = tmp_path / "curve.csv"
    good.write_text("tokens,loss\n1000,3.0\n2000,2.9\n4000,2.8\n")
    for args in (["fit", str(bad)], ["transfer", str(bad), str(good)], ["transfer", str(good), str(bad)]):
        code, err = _main(capsys, args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and str(bad) in err, (args, err)


def test_cli_plan_refuses_a_fit_file_that_is_not_a_fit(tmp_path, capsys):
    for name, content in (("garbage.json", bytes(range(255, 0, -1))), ("empty.json", b""), ("list.json", b"[1, 2]"),
                          ("partial.json", b'{"law": "isoflop"}')):
        (tmp_path / name).write_bytes(content)
        for extra in ([], ["--objective", "mlm", "--transfer"]):
            code, err = _main(capsys, ["plan", "--flops", "1e20", "--fit", str(tmp_path / name), *extra])
            assert code == 2 and len(err.strip().splitlines()) == 1, (name, extra, err)


def test_cli_transfer_compares_each_size_with_its_own_scratch_curve(tmp_path, capsys):
    """With a params column, a transferred point of size N gets D_e from the scratch curve of size N (D_t of
    one size read off another size's curve is meaningless); several sizes without per-size scratch curves
    are refused."""
    from tenfold.plmscale.cli import app

    d = np.logspace(4, 7, 30)
    d_f = np.logspace(4.5, 6, 6)
    scratch, finetuned, truth = ["tokens,loss,params"], ["tokens,loss,params"], []
    for n, k, shift in ((1e4, 4.0, 1.5), (1e5, 3.0, 2.0)):  # the larger model: lower loss, more transfer
        scratch += [f"{x:.6g},{k * x ** -0.1:.12g},{n:g}" for x in d]
        finetuned += [f"{x:.6g},{k * (shift * x) ** -0.1:.12g},{n:g}" for x in d_f]
        truth += list((shift - 1) * d_f)
    (tmp_path / "s.csv").write_text("\n".join(scratch) + "\n")
    (tmp_path / "t.csv").write_text("\n".join(finetuned) + "\n")
    res = CliRunner().invoke(app, ["transfer", str(tmp_path / "s.csv"), str(tmp_path / "t.csv")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    np.testing.assert_allclose(out["transferred_tokens"], truth, rtol=1e-4)
    assert out["law"]["beta"] > 0
    (tmp_path / "s1.csv").write_text("\n".join(["tokens,loss"] + [s.rsplit(",", 1)[0] for s in scratch[1:31]]) + "\n")
    code, err = _main(capsys, ["transfer", str(tmp_path / "s1.csv"), str(tmp_path / "t.csv")])
    assert code == 2 and "params" in err
