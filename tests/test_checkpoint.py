"""Checkpoints: weights-only loading, strict matching with a readable diff, atomic writes."""
import os

import pytest
import torch

from fastreid.modeling.meta_arch import build_model
from sfsc.fastreid.checkpoint import CheckpointError, SFSCCheckpointer


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _model(cfg, **changes):
    cfg = cfg.clone()
    for key, value in changes.items():
        node = cfg
        *path, leaf = key.split(".")
        for part in path:
            node = getattr(node, part)
        setattr(node, leaf, value)
    torch.manual_seed(0)
    return build_model(cfg)


def test_round_trip(sfsc_cfg, tmp_path):
    model = _model(sfsc_cfg)
    SFSCCheckpointer(model, str(tmp_path)).save("model_final", epoch=3)
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    other = _model(sfsc_cfg)
    torch.nn.init.zeros_(other.heads.weight)
    extra = SFSCCheckpointer(other).load(str(tmp_path / "model_final.pth"))
    assert extra["epoch"] == 3
    assert torch.equal(other.heads.weight, model.heads.weight)


def test_code_carrying_checkpoint_is_refused(sfsc_cfg, tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": _model(sfsc_cfg).state_dict(), "x": _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError, match="could execute code"):
        SFSCCheckpointer(_model(sfsc_cfg)).load(str(path))
    assert not marker.exists()
    # The explicit flag is for trusted files: it does unpickle (and so runs the payload).
    SFSCCheckpointer(_model(sfsc_cfg), allow_pickle=True).load(str(path))
    assert marker.exists()


def test_other_width_list_is_refused_with_the_widths_named(sfsc_cfg, tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"model": _model(sfsc_cfg, **{"SFSC.WIDTHS": [0.5]}).state_dict()}, path)
    model = _model(sfsc_cfg)
    before = model.heads.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"width list differs.*0\.25") as err:
        SFSCCheckpointer(model).load(str(path))
    assert "0.75" in str(err.value)
    assert torch.equal(model.heads.weight, before)  # nothing was loaded


def test_other_class_count_is_refused(sfsc_cfg, tmp_path):
    path = tmp_path / "c.pth"
    torch.save({"model": _model(sfsc_cfg, **{"MODEL.HEADS.NUM_CLASSES": 5}).state_dict()}, path)
    with pytest.raises(CheckpointError, match="heads.weight.*number of classes"):
        SFSCCheckpointer(_model(sfsc_cfg)).load(str(path))
    SFSCCheckpointer(_model(sfsc_cfg), strict=False).load(str(path))  # on purpose: allowed


def test_other_architecture_is_refused(sfsc_cfg, tmp_path):
    path = tmp_path / "a.pth"
    torch.save({"model": _model(sfsc_cfg, **{"MODEL.BACKBONE.DEPTH": "34x"}).state_dict()}, path)
    with pytest.raises(CheckpointError, match="in the checkpoint but not in the model"):
        SFSCCheckpointer(_model(sfsc_cfg)).load(str(path))


def test_truncated_file_is_a_clear_error(sfsc_cfg, tmp_path):
    path = tmp_path / "t.pth"
    torch.save({"model": _model(sfsc_cfg).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        SFSCCheckpointer(_model(sfsc_cfg)).load(str(path))


def test_a_crash_while_saving_keeps_the_previous_checkpoint(sfsc_cfg, tmp_path, monkeypatch):
    model = _model(sfsc_cfg)
    checkpointer = SFSCCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000")
    good = (tmp_path / "model_0000.pth").read_bytes()

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save("model_0000")
    assert (tmp_path / "model_0000.pth").read_bytes() == good
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000.pth"]
