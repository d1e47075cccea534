"""Evaluation metrics: FID against a direct Fréchet distance, LPIPS, weights errors offline, timing, IoU, leakage."""

import logging
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from eval_helpers import ChannelStatistics, random_images
from pickle_helpers import CodeInPickle
from torch import nn

from l2sae.evaluation.fid import INCEPTION_KEYS, INCEPTION_WEIGHTS, GroupedFID, inception_features, to_uint8
from l2sae.evaluation.leakage import EditLeakage
from l2sae.evaluation.lpips_metric import BACKBONE_WEIGHTS, build_lpips, lpips_distance
from l2sae.evaluation.masks import RegionIoU
from l2sae.evaluation.timing import TimingStats, measure_seconds
from l2sae.evaluation.weights import MissingWeightsError, check_enabled, optional_metric
from l2sae.losses import PerceptualDistance
from l2sae.utils.errors import ConfigError
from l2sae.utils.pretrained import UnsafeWeightsError, read_weights


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """The textbook FID formula on two feature sets N x D."""
    mu_real, mu_fake = real.mean(axis=0), fake.mean(axis=0)
    cov_real, cov_fake = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_real @ cov_fake).real
    return float(((mu_real - mu_fake) ** 2).sum() + np.trace(cov_real + cov_fake - 2 * covmean))


def test_to_uint8_maps_the_range_ends_and_rounds():
    images = torch.tensor([-1.0, 1.0, 0.0, -2.0, 1 / 127.5 - 1]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(images)[0, 0, 0].tolist() == [0, 255, 128, 0, 1]


def test_grouped_fid_matches_a_direct_frechet_distance():
    real = random_images(40)
    fakes = {"dark": random_images(30, brightness=-0.3), "bright": random_images(25, brightness=0.2)}
    extractor = ChannelStatistics()
    fid = GroupedFID(extractor, groups=["dark", "bright", "both", "empty"])
    for batch in real.split(16):
        fid.add_real(batch)
    for group, images in fakes.items():
        for batch in images.split(7):
            fid.add(batch, [group, "both"])
    result = fid.compute()
    real_features = extractor(to_uint8(real)).double().numpy()
    for group, images in fakes.items():
        expected = frechet_distance(real_features, extractor(to_uint8(images)).double().numpy())
        assert result[group]["fid"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert result[group]["fid_images"] == len(images)
    both = torch.cat(list(fakes.values()))
    expected = frechet_distance(real_features, extractor(to_uint8(both)).double().numpy())
    assert result["both"]["fid"] == pytest.approx(expected, rel=1e-6) and result["both"]["fid_images"] == 55
    assert result["empty"] == {"fid": None, "fid_images": 0, "kid": None, "kid_std": None, "kid_subset_size": None}
    assert fid.num_real == 40
    assert result["dark"]["fid"] > 0.01  # the sets really differ


def unbiased_polynomial_mmd(real: np.ndarray, fake: np.ndarray) -> float:
    """The textbook KID formula: unbiased MMD^2 with the kernel (x.y / d + 1)^3, on two sets of equal size."""

    def kernel(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    m = len(real)
    within = [(kernel(x, x).sum() - np.trace(kernel(x, x))) / (m * (m - 1)) for x in (real, fake)]
    return float(sum(within) - 2 * kernel(real, fake).mean())


def test_grouped_kid_matches_a_direct_mmd_and_adapts_its_subset_to_small_sets():
    real, fake = random_images(30), random_images(30, brightness=-0.3)
    extractor = ChannelStatistics()
    kid = GroupedFID(extractor, groups=["all", "few", "one"], kid_subsets=1)  # one subset: all 30 images
    kid.add_real(real)
    kid.add(fake, ["all"])
    kid.add(fake[:5], ["few"])
    kid.add(fake[:1], ["one"])
    result = kid.compute()
    features = [extractor(to_uint8(images)).double().numpy() for images in (real, fake)]
    assert result["all"]["kid"] == pytest.approx(unbiased_polynomial_mmd(*features), rel=1e-6)
    assert result["all"]["kid_std"] == 0.0 and result["all"]["kid_subset_size"] == 30
    assert result["few"]["kid_subset_size"] == 5 and result["few"]["kid"] is not None  # torchmetrics would refuse 1000
    assert result["one"]["kid"] is None and result["one"]["fid"] is None
    state = torch.random.get_rng_state()
    again = GroupedFID(extractor, groups=["few"], kid_subsets=10)
    again.add_real(real)
    again.add(fake[:5], ["few"])
    first, second = again.compute()["few"]["kid"], again.compute()["few"]["kid"]
    assert first == second and torch.equal(torch.random.get_rng_state(), state)  # seeded, global RNG untouched


def test_grouped_fid_rejects_an_unknown_group():
    fid = GroupedFID(ChannelStatistics(), groups=["a"])
    with pytest.raises(KeyError, match="unknown FID groups"):
        fid.add(random_images(2), ["a", "b"])


def test_inception_weights_missing_offline_name_the_file_and_the_place(offline_empty_cache):
    with pytest.raises(MissingWeightsError) as error:
        inception_features()
    message = str(error.value)
    assert INCEPTION_WEIGHTS in message
    assert str(offline_empty_cache) in message
    assert "metrics.fid.feature_extractor_weights_path" in message


def test_inception_weights_come_from_the_configured_path_then_the_hub_cache(offline_empty_cache, tmp_path, monkeypatch):
    import torchmetrics.image.fid

    built = []

    def inception_spy(**kwargs):
        built.append({**kwargs, "state": torch.load(kwargs["feature_extractor_weights_path"], weights_only=True)})
        return nn.Identity()

    monkeypatch.setattr(torchmetrics.image.fid, "NoTrainInceptionV3", inception_spy)
    offline_empty_cache.mkdir(parents=True)
    cached = offline_empty_cache / INCEPTION_WEIGHTS
    torch.save({key: torch.zeros(1) for key in INCEPTION_KEYS}, cached)
    configured = tmp_path / "my_inception.pth"
    torch.save({key: torch.ones(1) for key in INCEPTION_KEYS}, configured)
    inception_features(weights_path=configured, antialias=False)
    inception_features(num_features=768)
    # torch-fidelity is handed the tensors read weights-only, never the file
    assert [float(kwargs["state"]["fc.weight"]) for kwargs in built] == [1.0, 0.0]
    assert [kwargs["antialias"] for kwargs in built] == [False, True]
    assert built[1]["features_list"] == ["768"]


@pytest.fixture
def inception_architecture_state():
    """The key names and shapes of the FID Inception network (random weights, built without any file)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    with (
        pytest.MonkeyPatch.context() as patch,
        torch.device("meta"),
    ):
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: None)
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        network = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    return {name: torch.full(value.shape, 0.01, dtype=torch.float16) for name, value in network.state_dict().items()}


@pytest.mark.parametrize("place", ["configured", "hub_cache"])
def test_inception_weights_with_code_are_refused_unrun(offline_empty_cache, tmp_path, place):
    """Issue 17.1: torch-fidelity would unpickle the file (weights_only=False) and run what it holds."""
    marker = tmp_path / "code_ran"
    offline_empty_cache.mkdir(parents=True)
    path = tmp_path / "evil.pth" if place == "configured" else offline_empty_cache / INCEPTION_WEIGHTS
    torch.save({key: torch.zeros(1) for key in INCEPTION_KEYS} | {"extra": CodeInPickle(marker)}, path)
    with pytest.raises(UnsafeWeightsError, match=f"{path.name}.*could hold code"):
        inception_features(weights_path=path if place == "configured" else None)
    assert not marker.exists()


def test_inception_weights_read_weights_only_build_the_network(tmp_path, inception_architecture_state):
    path = tmp_path / "inception.pth"
    torch.save(inception_architecture_state, path)
    network = inception_features(weights_path=path)
    assert float(network.fc.weight[0, 0]) == pytest.approx(0.01, abs=1e-5)
    assert network(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 2048)
    del inception_architecture_state["fc.bias"]
    torch.save(inception_architecture_state, path)
    with pytest.raises(UnsafeWeightsError, match="inception.pth: not the FID Inception weights.*fc.bias"):
        inception_features(weights_path=path)


def test_lpips_backbone_and_heads_with_code_are_refused_unrun(offline_empty_cache, tmp_path):
    marker = tmp_path / "code_ran"
    offline_empty_cache.mkdir(parents=True)
    torch.save({"features.0.weight": CodeInPickle(marker)}, offline_empty_cache / BACKBONE_WEIGHTS["alex"])
    with pytest.raises(UnsafeWeightsError, match="alexnet-owt-7be5be79.pth.*could hold code"):
        build_lpips("alex")
    with pytest.raises(UnsafeWeightsError, match="alexnet-owt-7be5be79.pth.*could hold code"):
        PerceptualDistance("alex")  # the training loss reads the same file the same way
    assert not marker.exists()


def test_empty_or_pickled_weight_files_get_one_clear_line(tmp_path):
    """Issue: an empty file raised IndexError; a pickled module gave torch's whole multi-line text."""
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(
        UnsafeWeightsError, match=r"empty\.pth: an empty file \(0 bytes\), not a PyTorch file\. Replace"
    ):
        read_weights(empty, expected="alexnet-owt-7be5be79.pth")
    module = tmp_path / "module.pth"
    torch.save(nn.Linear(2, 2), module)
    with pytest.raises(UnsafeWeightsError) as info:
        read_weights(module)
    message = str(info.value)
    assert message.startswith(f"{module}: holds pickled Python objects (Unsupported global: GLOBAL torch.nn")
    assert "could hold code" in message and "\n" not in message and "\x1b" not in message


def test_inception_weights_path_that_does_not_exist_names_the_key(tmp_path):
    with pytest.raises(MissingWeightsError, match="feature_extractor_weights_path=.*no such file"):
        inception_features(weights_path=tmp_path / "nope.pth")


def test_lpips_of_identical_images_is_zero_and_positive_otherwise():
    model = build_lpips("alex", random_backbone=True)
    images = random_images(3, size=64)
    assert torch.equal(lpips_distance(model, images, images), torch.zeros(3))
    assert (lpips_distance(model, images, random_images(3, size=64)) > 0).all()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_backbone_missing_offline_name_the_file_and_the_place(offline_empty_cache, net):
    with pytest.raises(MissingWeightsError) as error:
        build_lpips(net)
    assert BACKBONE_WEIGHTS[net] in str(error.value)
    assert str(offline_empty_cache) in str(error.value)
    assert "metrics.lpips.backbone_weights_path" in str(error.value)


def test_lpips_random_backbone_needs_no_download(offline_empty_cache):
    build_lpips("alex", random_backbone=True)  # linear heads ship with lpips; the backbone stays random


def test_lpips_loads_the_backbone_from_a_configured_torchvision_file(offline_empty_cache, tmp_path):
    import torchvision

    alexnet = torchvision.models.alexnet(weights=None)
    path = tmp_path / BACKBONE_WEIGHTS["alex"]
    # the part LPIPS reads (torchvision's file also holds the classifier: 233 MB more to write and read, 1.5 s)
    torch.save({name: value for name, value in alexnet.state_dict().items() if name.startswith("features.")}, path)
    model = build_lpips("alex", backbone_weights_path=path)
    assert torch.equal(model.net.slice1[0].weight, alexnet.features[0].weight)
    assert torch.equal(getattr(model.net.slice5, "10").bias, alexnet.features[10].bias)
    # the same file in the hub cache is found without configuration
    offline_empty_cache.mkdir(parents=True)
    path.rename(offline_empty_cache / path.name)
    assert torch.equal(getattr(build_lpips("alex").net.slice2, "3").weight, alexnet.features[3].weight)


def weights_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "l2sae.evaluation.weights"]


@pytest.mark.parametrize(
    "name, build, weights_file",
    [
        ("FID", inception_features, INCEPTION_WEIGHTS),
        ("LPIPS", lambda: build_lpips("alex"), BACKBONE_WEIGHTS["alex"]),
    ],
)
def test_auto_skips_a_metric_without_weights_with_one_warning(offline_empty_cache, caplog, name, build, weights_file):
    key = f"metrics.{name.lower()}.enabled"
    with caplog.at_level(logging.WARNING):
        network, note = optional_metric(name, "auto", key, build)
    assert network is None
    assert note == f"{name} skipped: {weights_file} not found in {offline_empty_cache} and it could not be downloaded."
    (warning,) = weights_warnings(caplog)
    assert note in warning and f"{key}=true makes this an error" in warning


def test_enabled_true_raises_false_skips_silently_auto_builds_what_it_can(offline_empty_cache, caplog):
    with pytest.raises(MissingWeightsError, match=INCEPTION_WEIGHTS):
        optional_metric("FID", True, "metrics.fid.enabled", inception_features)

    def must_not_build():
        raise AssertionError("a disabled metric is not built")

    with caplog.at_level(logging.WARNING):
        assert optional_metric("FID", False, "metrics.fid.enabled", must_not_build) == (
            None,
            "FID not computed (metrics.fid.enabled=false).",
        )
        extractor = ChannelStatistics()
        assert optional_metric("FID", "auto", "metrics.fid.enabled", lambda: extractor) == (extractor, None)
    assert weights_warnings(caplog) == []


def test_auto_keeps_a_configured_path_that_does_not_exist_an_error(tmp_path):
    with pytest.raises(MissingWeightsError, match="feature_extractor_weights_path=.*nope.pth: no such file"):
        optional_metric("FID", "auto", "metrics.fid.enabled", lambda: inception_features(tmp_path / "nope.pth"))


@pytest.mark.parametrize("value", ["maybe", "yes", None, 1])
def test_enabled_accepts_only_auto_true_false(value):
    assert [check_enabled(ok, "metrics.fid.enabled") for ok in ("auto", True, False)] == ["auto", True, False]
    with pytest.raises(ConfigError, match="metrics.fid.enabled: expected auto, true or false"):
        check_enabled(value, "metrics.fid.enabled")


def test_lpips_rejects_an_unknown_backbone_and_a_wrong_file(tmp_path):
    with pytest.raises(ConfigError, match="metrics.lpips.net"):
        build_lpips("resnet")
    path = tmp_path / "wrong.pth"
    torch.save({"classifier.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="wrong.pth.*alexnet-owt-7be5be79.pth"):
        build_lpips("alex", backbone_weights_path=path)


def test_timing_stats_and_measurement():
    stats = TimingStats.from_seconds([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (stats.median_s, stats.min_s, stats.max_s, stats.q1_s, stats.q3_s, stats.samples) == (3, 1, 5, 2, 4, 5)
    calls = []
    seconds = measure_seconds([lambda i=i: calls.append(i) for i in range(4)], warmup=2)
    assert calls == [0, 0, 0, 1, 2, 3]  # warm-up runs the first call twice more, untimed
    assert len(seconds) == 4 and all(0 <= s < 1 for s in seconds)
    with pytest.raises(ValueError, match="no timing samples"):
        TimingStats.from_seconds([])


def test_region_iou_sums_over_the_set_and_averages_defined_regions():
    target = torch.zeros(2, 3, 4, 4)
    predicted = torch.zeros(2, 3, 4, 4)
    target[0, 0, :2] = 1  # region a: 8 true pixels in image 0
    predicted[0, 0, :1] = 0.9  # 4 of them found
    predicted[1, 0, 3] = 0.7  # and 4 wrong ones in image 1
    target[:, 1] = 1
    predicted[:, 1] = 1  # region b: perfect
    predicted[:, 1, 0, 0] = 0.4  # except two pixels below the threshold
    iou = RegionIoU(["a", "b", "c"])
    iou.update(predicted[:1], target[:1])
    iou.update(predicted[1:], target[1:])
    result = iou.compute()
    assert result["a"] == pytest.approx(4 / 12)
    assert result["b"] == pytest.approx(30 / 32)
    assert result["c"] is None  # absent everywhere
    assert result["mean"] == pytest.approx((4 / 12 + 30 / 32) / 2)
    assert result["images"] == 2
    with pytest.raises(ValueError, match="regions"):
        iou.update(predicted[:, :2], target[:, :2])


def test_edit_leakage_inside_outside_and_ratio():
    inputs = torch.zeros(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1  # top half is the region
    edits = inputs.clone()
    edits[:, :, :2] += 0.5  # change 0.5 inside
    edits[0, 0, 3, 3] = 0.8  # one channel of one pixel outside
    leakage = EditLeakage()
    leakage.update(inputs, edits, mask)
    result = leakage.compute()
    assert result["leakage_inside"] == pytest.approx(0.5)
    assert result["leakage_outside"] == pytest.approx(0.8 / 3 / 16)
    assert result["leakage_ratio"] == pytest.approx(0.8 / 3 / 16 / 0.5)
    assert result["leakage_pairs"] == 2
    empty = EditLeakage().compute()
    assert empty["leakage_ratio"] is None and empty["leakage_pairs"] == 0
    with pytest.raises(ValueError, match="B x 1 x H x W"):
        leakage.update(inputs, edits, mask[:, 0])


def test_region_iou_without_images_is_undefined_not_nan():
    result = RegionIoU(["a"]).compute()
    assert result == {"a": None, "mean": None, "images": 0}
    assert not any(isinstance(v, float) and math.isnan(v) for v in result.values())
