"""The site was dying and nothing said so: /health must say degraded (or failing) while a
disk is full, and healthy again once space is back."""

import pytest


@pytest.mark.chaos
@pytest.mark.docker
def test_health_tells_the_truth_while_the_cache_disk_is_full(fulldisk_stack):
    with fulldisk_stack.full("cache"):
        fulldisk_stack.observe()                 # every probe once, disks and /health
    assert fulldisk_stack.wait_recovered()
    fulldisk_stack.judge("health_truthful")
