""""The logs were not updating ... I was flying blind": with the log disk full, failed
requests must still leave a record an operator can read (stderr), naming the cause."""

import pytest


@pytest.mark.chaos
@pytest.mark.docker
def test_errors_reach_an_operator_while_the_log_disk_is_full(fulldisk_stack):
    with fulldisk_stack.full("applogs"):
        fulldisk_stack.probe("/datasets/earthquakes/download?size=0",   # an ad hoc request
                             expect_status=[400])
        fulldisk_stack.observe()
        fulldisk_stack.log_flood()
    fulldisk_stack.judge("errors_surface")
