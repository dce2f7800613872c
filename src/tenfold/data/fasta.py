"""Protein sequences in FASTA: real UniProt entries from a Debian package, or any user FASTA file.

`uniprot-mmseqs2` is the example database that Debian's `mmseqs2-examples` package installs
(`apt-get install --no-install-recommends mmseqs2-examples`): 20,007 UniProtKB sequences (3,183
Swiss-Prot + 16,817 TrEMBL, about 9.06M residues) in /usr/share/doc/mmseqs2/example-data/DB.fasta.gz,
and 500 more in QUERY.fasta.gz. Sequences: UniProt, CC BY 4.0; package: GPL-3 (MMseqs2).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

from tenfold.core.errors import InputError
from tenfold.data.registry import DatasetSpec, register_dataset

MMSEQS_DIR = Path("/usr/share/doc/mmseqs2/example-data")
MMSEQS_DB = MMSEQS_DIR / "DB.fasta.gz"
MMSEQS_QUERY = MMSEQS_DIR / "QUERY.fasta.gz"
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"  # the 20 standard residues
AMBIGUOUS = "XBZUO"  # unknown, Asx, Glx, selenocysteine, pyrrolysine (IUPAC)
ALPHABET = AMINO_ACIDS + AMBIGUOUS


@dataclass(frozen=True)
class ProteinSet:
    """Sequences split into train and validation at sequence level: repeated sequences are kept once before the
    split, so no sequence is in both (checked when the split is made)."""

    name: str
    ids: list[str]
    train: list[str]
    valid: list[str]
    duplicates_dropped: int = 0  # records whose sequence repeats an earlier record's (same residues, another id)

    @property
    def n_residues(self) -> int:
        return sum(map(len, self.train)) + sum(map(len, self.valid))


def read_fasta(path: str | os.PathLike, check_alphabet: bool = True) -> list[tuple[str, str]]:
    """(id, sequence) pairs from a FASTA file (plain or .gz); letters are upper-cased, `*` stops dropped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"FASTA file {path} does not exist: give a protein FASTA file (.fasta, .fa, .faa, .gz)")
    opener = gzip.open if path.suffix == ".gz" else open
    records: list[tuple[str, str]] = []
    name, chunks = None, []
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                if name is not None:
                    records.append((name, "".join(chunks)))
                name, chunks = line[1:].split(" ", 1)[0] or f"seq{len(records)}", []
            elif line:
                if name is None:
                    raise InputError(f"{path} is not FASTA: sequence data before the first '>' header")
                chunks.append(line.upper().rstrip("*"))
    if name is not None:
        records.append((name, "".join(chunks)))
    records = [(i, s) for i, s in records if s]
    if not records:
        raise InputError(f"{path} holds no sequences: check that it is a protein FASTA file")
    if check_alphabet:
        for rid, seq in records:
            check_sequence(seq, rid)
    return records


def check_sequence(seq: str, name: str = "sequence") -> None:
    """Raise InputError naming the letters of `seq` outside the amino-acid alphabet."""
    bad = sorted(set(seq) - set(ALPHABET))
    if bad:
        raise InputError(f"{name} has letters outside the amino-acid alphabet ({ALPHABET}): {''.join(bad)!r}; "
                         "is it a nucleotide file, or does it need cleaning?")


def _split(name: str, records: list[tuple[str, str]], valid_every: int, max_sequences: int | None) -> ProteinSet:
    if max_sequences is not None:
        records = records[:max_sequences]
    first: dict[str, str] = {}  # sequence -> id of its first record (insertion order kept)
    for rid, seq in records:
        first.setdefault(seq, rid)
    unique = [(rid, seq) for seq, rid in first.items()]
    if len(unique) < 2:
        raise InputError(f"protein set {name!r} has fewer than 2 distinct sequences")
    valid = [s for i, (_, s) in enumerate(unique) if i % valid_every == valid_every - 1]
    train = [s for i, (_, s) in enumerate(unique) if i % valid_every != valid_every - 1]
    shared = len(set(valid) & set(train))
    if shared:  # cannot happen after the de-duplication above; the check keeps it that way
        raise InputError(f"protein set {name!r}: {shared} validation sequences are also training sequences")
    return ProteinSet(name, [r for r, _ in unique], train, valid, len(records) - len(unique))


def load_uniprot_mmseqs2(valid_every: int = 20, max_sequences: int | None = None) -> ProteinSet:
    """The 20,007 UniProtKB sequences of Debian's mmseqs2-examples (every `valid_every`-th held out)."""
    if not MMSEQS_DB.is_file():
        raise InputError("the UniProt example sequences are not installed: run "
                         "`apt-get install --no-install-recommends mmseqs2-examples` (as root), or give --fasta PATH")
    return _split("uniprot-mmseqs2", read_fasta(MMSEQS_DB), valid_every, max_sequences)


def load_fasta(path: str | os.PathLike, valid_every: int = 20, max_sequences: int | None = None) -> ProteinSet:
    """A user's protein FASTA file as a ProteinSet."""
    return _split(Path(path).name, read_fasta(path), valid_every, max_sequences)


# UniProtKB/Swiss-Prot amino-acid composition (percent; UniProt release statistics, rounded)
BACKGROUND = {"A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75, "G": 7.07, "H": 2.27,
              "I": 5.96, "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86, "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08,
              "Y": 2.92, "V": 6.87}


def generate_proteins(n: int = 4000, seed: int = 0, valid_every: int = 20) -> ProteinSet:
    """Synthetic proteins: an order-1 Markov chain whose stationary mix is near the UniProt composition
    (random, seeded transition tilts), log-normal lengths (median ~300). Labelled synthetic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = list(BACKGROUND)
    base = np.array([BACKGROUND[a] for a in letters]) / sum(BACKGROUND.values())
    trans = base[None, :] * rng.lognormal(0.0, 0.7, (20, 20))  # per-residue context tilts something to learn
    trans /= trans.sum(1, keepdims=True)
    cum = trans.cumsum(1)
    seqs = []
    for _ in range(n):
        length = int(np.clip(rng.lognormal(np.log(300), 0.5), 30, 2000))
        u = rng.random(length)
        state = rng.choice(20, p=base)
        out = [state]
        for x in u[1:]:
            state = min(int(np.searchsorted(cum[state], x)), 19)
            out.append(state)
        seqs.append("M" + "".join(letters[i] for i in out[1:]))
    return _split("synthetic-proteins", [(f"syn{i}", s) for i, s in enumerate(seqs)], valid_every, None)


def load_proteins(name_or_path: str | os.PathLike | None = None, max_sequences: int | None = None) -> ProteinSet:
    """'uniprot-mmseqs2' (the default), 'synthetic-proteins', or a FASTA path."""
    if name_or_path in (None, "uniprot-mmseqs2"):
        return load_uniprot_mmseqs2(max_sequences=max_sequences)
    if name_or_path == "synthetic-proteins":
        return generate_proteins(max_sequences or 4000)
    return load_fasta(name_or_path, max_sequences=max_sequences)


register_dataset(DatasetSpec(
    name="uniprot-mmseqs2", source="debian package", size="20,007 proteins, 9.06M residues (DB.fasta.gz)",
    licence="sequences: UniProt CC BY 4.0; package mmseqs2-examples: GPL-3",
    loader="tenfold.data.fasta:load_uniprot_mmseqs2",
    description="UniProtKB sample (3,183 Swiss-Prot + 16,817 TrEMBL) shipped by Debian's mmseqs2-examples "
                "(apt-get install --no-install-recommends mmseqs2-examples); the plmscale sweep corpus.",
    available=lambda: MMSEQS_DB.is_file()))
register_dataset(DatasetSpec(
    name="fasta:PATH", source="user path", size="any", licence="the user's",
    loader="tenfold.data.fasta:load_fasta",
    description="any protein FASTA file (.fasta/.fa/.faa, optionally .gz), e.g. --fasta PATH."))
register_dataset(DatasetSpec(
    name="synthetic-proteins", source="generated", size="4,000 sequences (default), median length ~300",
    licence="generated here (no licence needed)", loader="tenfold.data.fasta:generate_proteins",
    description="order-1 Markov chain near the UniProt amino-acid composition; the fallback when "
                "mmseqs2-examples is not installed (results are labelled synthetic)."))
