""""There was a bug in it, which was why we didn't notice": the download counter must
move by exactly the downloads served, new ones and repeated ones (served from files
already made), and not by those refused while the disk was full."""

import pytest


@pytest.mark.chaos
@pytest.mark.docker
def test_counter_moves_by_the_downloads_served(fulldisk_stack):
    fulldisk_stack.downloads(3, ["64KiB"])
    fulldisk_stack.downloads(3, ["64KiB"], repeat=True)   # the same exports again
    with fulldisk_stack.full("downloads"):
        fulldisk_stack.downloads(2, ["64KiB"])            # refused: must not count
    fulldisk_stack.judge("counter_accuracy")
