"""The 12-metric evaluation matrix measured on this machine (issue 7 §3): every value labelled, nothing invented."""

from tvmedge.bench.matrix import METRICS, STATUSES, measure_host, read_energy_uj


def test_twelve_metrics_with_units():
    assert len(METRICS) == 12 and len({m.key for m in METRICS}) == 12
    assert all(m.unit and m.description for m in METRICS)


def test_host_measurement_labels_every_metric(x86_artifact, tmp_path):
    rows = measure_host(x86_artifact, budget_s=0.1, storage_dir=str(tmp_path), storage_mb=4, sysfs_root=str(tmp_path))
    assert [r["metric"] for r in rows] == [m.key for m in METRICS]
    assert all(r["status"] in STATUSES and r["method"] for r in rows)
    by = {r["metric"]: r for r in rows}
    for key in ("peak_gflops_fp32", "memory_bandwidth", "memory_capacity", "storage_read_throughput", "model_load",
                "first_inference", "throughput"):
        assert by[key]["status"] == "measured" and by[key]["value"] > 0, by[key]
    assert by["latency_p50_p99"]["p99"] >= by["latency_p50_p99"]["value"] > 0
    # tmp_path has no powercap tree: energy is reported unavailable with the reason, never estimated.
    assert by["energy_per_query"]["status"] == "unavailable" and "powercap" in by["energy_per_query"]["method"]
    assert list(tmp_path.glob("tvmedge-bench-*")) == []  # the storage test file is removed


def test_model_metrics_unavailable_without_artifact(tmp_path):
    rows = {r["metric"]: r for r in measure_host(None, budget_s=0.05, storage_dir=str(tmp_path), storage_mb=1,
                                                 sysfs_root=str(tmp_path))}
    assert rows["model_load"]["status"] == "unavailable" and "--artifact" in rows["model_load"]["method"]


def test_powercap_reader_sums_package_counters(tmp_path):
    for name, value in (("intel-rapl:0", 1000), ("intel-rapl:1", 500), ("intel-rapl:0:0", 7)):
        (tmp_path / "sys/class/powercap" / name).mkdir(parents=True)
        (tmp_path / "sys/class/powercap" / name / "energy_uj").write_text(f"{value}\n")
    assert read_energy_uj(str(tmp_path))() == 1500.0  # sub-zones (core, uncore) are inside their package
    assert read_energy_uj(str(tmp_path / "none")) is None
