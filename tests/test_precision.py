"""precision="auto": bf16 only where the hardware runs it natively (the capability checks are mocked)."""

import warnings

import pytest
import torch
from tiny_networks import TINY_SLICING

from l2sae.editing import L2SAEEditor
from l2sae.nn import SAEConfig, SwappingAutoencoder
from l2sae.utils import precision
from l2sae.utils.errors import ConfigError
from l2sae.utils.precision import native_bf16, resolve_precision

CPUINFO_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
CPUINFO_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16\n"


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """Mock the CPU: cpu(oneDNN's bf16 answer, /proc/cpuinfo's text or None when it cannot be read)."""

    def mock(onednn: bool, cpuinfo: str | None) -> None:
        path = tmp_path / "cpuinfo"
        path.unlink(missing_ok=True)
        if cpuinfo is not None:
            path.write_text(cpuinfo)
        monkeypatch.setattr(precision, "CPUINFO", path)
        monkeypatch.setattr(precision, "onednn_bf16", lambda: onednn)

    monkeypatch.setattr(precision, "_warned", set())
    return mock


@pytest.mark.parametrize(
    ("onednn", "cpuinfo", "expected"),
    [
        (True, CPUINFO_BF16, "bf16"),  # AVX-512 bf16: native
        (False, CPUINFO_AVX2, "32"),  # AVX2 only
        (True, CPUINFO_AVX2.replace("avx2", "avx2 avx512f"), "32"),  # oneDNN would emulate bf16 on AVX-512
        (False, CPUINFO_BF16, "32"),  # ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU
        (True, None, "32"),  # no /proc/cpuinfo: unknown, stay float32
    ],
)
def test_auto_picks_bf16_only_with_native_support(cpu, onednn, cpuinfo, expected, caplog):
    cpu(onednn, cpuinfo)
    with caplog.at_level("INFO", logger="l2sae.utils.precision"):
        assert resolve_precision("auto", "cpu") == expected
    assert f"precision=auto -> {expected}" in caplog.text


def test_explicit_bf16_without_native_support_warns_once(cpu):
    cpu(False, CPUINFO_AVX2)
    with pytest.warns(
        RuntimeWarning,
        match=r"precision=bf16: oneDNN does not run bf16.*emulated bf16 is far slower .*README, Performance",
    ):
        assert resolve_precision("bf16", "cpu") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu") == "bf16"  # second time: silent
        cpu(True, CPUINFO_BF16)
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"  # native: silent
        assert resolve_precision(32, "cpu") == "32"


def test_cuda_asks_torch_without_emulation(monkeypatch):
    calls = []
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation: calls.append(including_emulation) or True
    )
    assert native_bf16("cuda:0")[0] is True
    assert calls == [False]


def test_unknown_precision_names_the_key():
    with pytest.raises(ConfigError, match="precision: expected one of auto, 32, bf16, got '16'"):
        resolve_precision("16", "cpu")


def test_editor_resolves_auto(cpu):
    config = SAEConfig.preset("tiny")
    networks = [SwappingAutoencoder(config, with_discriminators=False) for _ in range(2)]
    cpu(False, CPUINFO_AVX2)
    editor = L2SAEEditor(*networks, TINY_SLICING)
    assert (editor.precision, editor.dtype) == ("32", torch.float32)
    cpu(True, CPUINFO_BF16)
    editor = L2SAEEditor(*networks, TINY_SLICING)
    assert (editor.precision, editor.dtype) == ("bf16", torch.bfloat16)
    assert {p.dtype for p in editor.smn.parameters()} == {torch.bfloat16}
