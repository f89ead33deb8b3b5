"""Config mistakes become one ConfigError naming the key and the fix; the CLI exits 2 with it,
without a traceback and without touching earlier outputs."""
import os
import subprocess
import sys

import pytest

import sfsc
from fastreid.config import get_cfg
from fastreid.modeling.meta_arch import build_model
from sfsc.config_checks import ConfigError, merge_config
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.defaults import check_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "Synthetic", "sfsc_R18.yml")


def _cfg():
    cfg = get_cfg()
    sfsc.add_sfsc_config(cfg)
    return cfg


def test_misspelt_key_in_a_file_names_the_closest_key(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(f"_BASE_: {CONFIG}\nSFSC:\n  WIDHTS: [0.25, 0.5]\n")
    with pytest.raises(ConfigError, match=r"Unknown config key SFSC.WIDHTS .*Did you mean "
                                          r"SFSC.WIDTHS\?"):
        merge_config(_cfg(), str(path))


def test_misspelt_key_on_the_command_line_names_the_closest_key():
    with pytest.raises(ConfigError, match="SFSC.AGGREGATON .*Did you mean SFSC.AGGREGATION"):
        merge_config(_cfg(), CONFIG, ["SFSC.AGGREGATON", "sum"])


@pytest.mark.parametrize("widths, why", [
    ("[]", "SFSC.WIDTHS is empty"), ("[0.0,0.5]", "not a crop ratio"),
    ("[0.5,1.0]", "full width 1.0 is always included"), ("[-0.25]", "not a crop ratio"),
    ("[0.5,0.5]", "lists a width twice"), ("[1.5]", "not a crop ratio")])
def test_invalid_width_lists(widths, why):
    cfg = _cfg()
    merge_config(cfg, CONFIG, ["SFSC.WIDTHS", widths])
    with pytest.raises(ConfigError, match=why):
        check_config(cfg)


@pytest.mark.parametrize("key, value, valid", [
    ("SFSC.COMPAT_LOSS", "evidental", "('asymmetric', 'bct', 'evidential', 'none')"),
    ("SFSC.AGGREGATION", "pcgard", "['aligned_mtl', 'cagrad', 'dualproj', 'fairgrad', 'gradvac', "
                                   "'imtl_g', 'mgda', 'pcd', 'pcgrad', 'sum', 'upgrad']"),
    ("SFSC.EVIDENTIAL.ACTIVATION", "exps", "('exp', 'softplus', 'relu')")])
def test_an_unknown_method_name_lists_the_registered_ones(key, value, valid):
    cfg = _cfg()
    merge_config(cfg, CONFIG, [key, value])
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    assert str(caught.value) == f"{key} {value!r} is not one of {valid}."


def test_an_aggregation_is_built_from_its_config_keys():
    cfg = _cfg()
    merge_config(cfg, CONFIG, ["SFSC.AGGREGATION", "pcgrad", "SFSC.PCGRAD.EPS", "0.5"])
    assert build_aggregation(cfg, seed=4).eps == 0.5
    merge_config(cfg, CONFIG, ["SFSC.AGGREGATION", "sum"])
    assert type(build_aggregation(cfg)).__name__ == "SumAggregation"


def test_backbone_that_cannot_honour_a_width():
    cfg = _cfg()
    merge_config(cfg, os.path.join(ROOT, "configs", "Synthetic", "sfsc_ShuffleNet.yml"),
                 ["SFSC.WIDTHS", "[0.01]", "MODEL.DEVICE", "cpu"])
    check_config(cfg)
    with pytest.raises(ConfigError, match="cannot run at width 0.01.*Fix: use a larger width"):
        build_model(cfg)


def test_cli_exits_2_with_the_message_and_keeps_earlier_outputs(tmp_path):
    (tmp_path / "model_final.pth").write_bytes(b"earlier result")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", CONFIG,
         "SFSC.WIDTHS", "[0.5,0.5]", "OUTPUT_DIR", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: SFSC.WIDTHS = [0.5, 0.5] lists a width twice." in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["model_final.pth"]
    assert (tmp_path / "model_final.pth").read_bytes() == b"earlier result"
