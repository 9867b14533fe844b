"""Sysfs: reading thermal zones and writing cpufreq caps under a configurable root (issue 7 §4).

Fake trees in tmp_path stand in for /sys; a machine without the files gets one clear line, not a crash.
"""

import os

import pytest

from tvmedge.errors import HardwareError
from tvmedge.thermal.sysfs import CPUFREQ_DIR, THERMAL_DIR, Sysfs

OPPS = (408000, 1200000, 1800000, 2400000)


def test_reads_the_hottest_readable_zone(tmp_path):
    fs = Sysfs.create_fake(tmp_path, temp_c=41.5, frequencies_khz=OPPS, zones=3)
    (tmp_path / THERMAL_DIR / "thermal_zone1" / "temp").write_text("47250\n")
    (tmp_path / THERMAL_DIR / "thermal_zone2" / "temp").write_text("garbage\n")  # some zones fail to read: skipped
    assert fs.read_temp() == 47.25
    assert fs.zone_types() == ["soc-thermal0", "soc-thermal1", "soc-thermal2"]
    for index in range(3):
        (tmp_path / THERMAL_DIR / f"thermal_zone{index}" / "temp").write_text("\n")
    with pytest.raises(HardwareError, match="none of the 3 thermal zones under .* could be read"):
        fs.read_temp()


def test_caps_snap_down_to_operating_points_within_range(tmp_path):
    fs = Sysfs.create_fake(tmp_path, frequencies_khz=OPPS)
    target = tmp_path / CPUFREQ_DIR / "policy0" / "scaling_max_freq"
    assert fs.set_max_freq(2_000_000) == 1_800_000 and target.read_text() == "1800000\n"
    assert fs.set_max_freq(10) == 408_000 and fs.read_max_freq() == 408_000
    assert fs.set_max_freq(9_999_999) == 2_400_000


def test_each_cluster_gets_the_same_fraction_of_its_range(tmp_path):
    fs = Sysfs.create_fake(tmp_path, frequencies_khz=OPPS)
    little = tmp_path / CPUFREQ_DIR / "policy4"
    little.mkdir()
    for name, value in (("cpuinfo_min_freq", 408000), ("cpuinfo_max_freq", 1800000), ("scaling_max_freq", 1800000),
                        ("scaling_available_frequencies", "408000 1008000 1416000 1800000")):
        (little / name).write_text(f"{value}\n")
    fs = Sysfs(tmp_path)
    assert fs.set_max_freq(1_200_000) == 1_200_000  # half of the big cluster's 2.4 GHz ...
    assert (little / "scaling_max_freq").read_text() == "408000\n"  # ... half of 1.8 GHz is 900 MHz: the OPP below


def test_missing_files_say_so_in_one_line(tmp_path):
    with pytest.raises(HardwareError) as info:
        Sysfs(tmp_path)
    assert str(info.value) == (f"no thermal zones under {tmp_path / THERMAL_DIR}: this machine exposes no temperature "
                               "sensor to govern (try --simulate 600, or --sysfs-root for a board's tree)")
    zone = tmp_path / THERMAL_DIR / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("40000\n")
    with pytest.raises(HardwareError, match=r"no cpufreq policies under .*cpufreq: this machine exposes no CPU frequency control"):
        Sysfs(tmp_path)
    policy = tmp_path / CPUFREQ_DIR / "policy0"
    policy.mkdir(parents=True)
    (policy / "scaling_max_freq").write_text("fast\n")
    with pytest.raises(HardwareError, match="policy0 has an unreadable frequency file"):
        Sysfs(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write read-only files")
def test_unwritable_cap_names_the_file(tmp_path):
    fs = Sysfs.create_fake(tmp_path, frequencies_khz=OPPS)
    target = tmp_path / CPUFREQ_DIR / "policy0" / "scaling_max_freq"
    target.chmod(0o444)
    with pytest.raises(HardwareError, match=f"cannot write {target}: permission denied; run as root, or pass --dry-run"):
        fs.check_writable()
