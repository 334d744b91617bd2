"""Every command's help: printed to stdout, exit status 0 (absl's own help flags exit 1)."""

import pytest

from conftest import run_main
from gan_jax import benchmark, evaluate, features, sample, train, translate

MAINS = {"train": train.main, "sample": sample.main, "evaluate": evaluate.main,
         "translate": translate.main, "benchmark": benchmark.main, "features": features.main}
# A flag of each command's own that its short help lists.
OWN_FLAG = {"train": "--workdir", "sample": "--workdir", "evaluate": "--metrics",
            "translate": "--direction", "benchmark": "--steps", "features": "--dataset"}


@pytest.mark.parametrize("command", sorted(MAINS))
@pytest.mark.parametrize("flag", ["--help", "--helpfull"])
def test_help_exits_zero_and_lists_the_flags(command, flag, monkeypatch, capsys):
    code, stderr = run_main(MAINS[command], [command, flag], monkeypatch)
    out = capsys.readouterr().out
    assert (code, stderr) == (0, "")
    assert OWN_FLAG[command] in out
    assert ("--[no]helpfull" in out) == (flag == "--helpfull")  # absl's, in the full help only


def test_benchmark_torch_without_torch_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    code, stderr = run_main(benchmark.main, ["benchmark", "--torch"], monkeypatch)
    assert (code, stderr) == (2, 'error: --torch needs PyTorch: pip install -e ".[torch]" '
                                 '(or pip install torch)\n')
