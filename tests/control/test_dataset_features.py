import numpy as np
import pytest

from robokit.control.dataset_features import build_dataset_frame, frame_to_action, hw_to_dataset_features

OBS = {"shoulder_pan.pos": float, "gripper.pos": float, "front": (48, 64, 3)}
ACT = {"shoulder_pan.pos": float, "gripper.pos": float}


def test_hw_to_dataset_features_layout():
    obs = hw_to_dataset_features(OBS, "observation")
    assert obs["observation.state"] == {
        "dtype": "float32",
        "shape": [2],
        "names": ["shoulder_pan.pos", "gripper.pos"],
    }
    assert obs["observation.images.front"] == {
        "dtype": "video",
        "shape": [48, 64, 3],
        "names": ["height", "width", "channels"],
    }
    assert (
        hw_to_dataset_features(OBS, "observation", use_video=False)["observation.images.front"]["dtype"]
        == "image"
    )
    assert hw_to_dataset_features(ACT, "action") == {
        "action": {"dtype": "float32", "shape": [2], "names": list(ACT)}
    }


def test_bad_feature_named():
    with pytest.raises(ValueError, match="'weird'"):
        hw_to_dataset_features({"weird": "x"}, "observation")
    with pytest.raises(ValueError, match="prefix"):
        hw_to_dataset_features(ACT, "obs")


def test_build_frame_and_back():
    feats = {**hw_to_dataset_features(OBS, "observation"), **hw_to_dataset_features(ACT, "action")}
    img = np.full((48, 64, 3), 7, np.uint8)
    frame = build_dataset_frame(
        feats, {"gripper.pos": 2.0, "shoulder_pan.pos": 1.0, "front": img}, "observation"
    )
    assert set(frame) == {"observation.state", "observation.images.front"}
    np.testing.assert_array_equal(frame["observation.state"], np.array([1.0, 2.0], np.float32))
    assert frame["observation.state"].dtype == np.float32
    act = build_dataset_frame(feats, {"gripper.pos": 5.0, "shoulder_pan.pos": -3.0}, "action")
    assert set(act) == {"action"}
    assert frame_to_action(feats, act["action"]) == {"shoulder_pan.pos": -3.0, "gripper.pos": 5.0}
    with pytest.raises(KeyError, match="gripper.pos"):
        build_dataset_frame(feats, {"shoulder_pan.pos": 1.0}, "action")
