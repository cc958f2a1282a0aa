"""The heartbeat of a long Go build says how long it has run and what is left."""

from gamevm_dev.devstack.binaries import _build_progress


def test_elapsed_and_time_left() -> None:
    line = _build_progress(["etcd"], 30.4, 70)
    assert line == "still building etcd: 30s elapsed, about 40s left"


def test_past_the_estimate_says_so_instead_of_zero_left() -> None:
    line = _build_progress(["kube-apiserver", "kubectl"], 700, 480)
    assert "700s elapsed" in line
    assert "past the usual 480s" in line
    assert "0s left" not in line
