"""Clearing the cache "fixed" it for a while: a page rendered while the cache disk was
full must not leave a truncated cache entry that is served once space is back."""

import pytest


@pytest.mark.chaos
@pytest.mark.docker
def test_dataset_page_is_whole_after_the_cache_disk_was_full(fulldisk_stack):
    with fulldisk_stack.full("cache", fresh=True):   # a cold cache: the page is rendered now
        fulldisk_stack.probe("dataset")              # rendered through the on-disk cache
    fulldisk_stack.judge("recovery")                 # waits for recovery, then judges
