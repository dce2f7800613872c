"""Untrusted files: no code path unpickles arbitrary objects, and a malicious pickle is refused in one line."""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tenfold"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def _unsafe(call: ast.Call) -> str | None:
    name = _dotted(call.func)
    if name.endswith("torch.load") and not _true(call, "weights_only"):
        return "torch.load without weights_only=True"
    if name in ("pickle.load", "pickle.loads", "dill.load", "dill.loads", "cloudpickle.load", "joblib.load"):
        return f"{name} of a file"
    if _true(call, "allow_pickle"):
        return "numpy allow_pickle=True"
    if _true(call, "trust_remote_code"):
        return "trust_remote_code=True when loading"
    if name == "yaml.load" and not any(k.arg == "Loader" and "Safe" in _dotted(k.value) for k in call.keywords):
        return "yaml.load without SafeLoader"
    return None


def test_no_unsafe_deserialisation_anywhere_in_the_package():
    """Calls only (docstrings that tell users how to load a folder are fine)."""
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (why := _unsafe(node)):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {why}")
    assert not found, "\n".join(found)


def test_the_scanner_catches_each_unsafe_call_it_names():
    bad = ("torch.load(f)\npickle.load(h)\nnp.load(p, allow_pickle=True)\n"
           "M.from_pretrained(p, trust_remote_code=True)\nyaml.load(t)\n")
    good = "torch.load(f, weights_only=True)\nnp.load(p)\nyaml.load(t, Loader=yaml.SafeLoader)\n"
    assert sum(_unsafe(n) is not None for n in ast.walk(ast.parse(bad)) if isinstance(n, ast.Call)) == 5
    assert not any(_unsafe(n) for n in ast.walk(ast.parse(good)) if isinstance(n, ast.Call))


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['TENFOLD_PWNED']}",))


def test_a_malicious_pickle_where_a_model_folder_is_accepted_is_refused_in_one_line(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32, "intermediate_size": 64,'
        ' "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 64}')
    marker = tmp_path / "PWNED"
    os.environ["TENFOLD_PWNED"] = str(marker)
    try:
        with open(model / "pytorch_model.bin", "wb") as handle:
            pickle.dump({"weight": _Payload()}, handle)
    finally:
        del os.environ["TENFOLD_PWNED"]
    code = ("import sys; from transformers import AutoModelForCausalLM; from tenfold import cli;"
            "cli.app.command('load-model')(lambda path: AutoModelForCausalLM.from_pretrained(path));"
            "cli.main(['load-model', sys.argv[1]])")
    res = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "refused to load a pickled file" in lines[0]
    assert "Traceback" not in res.stderr
    assert not marker.exists()  # the payload never ran
