"""Exversion, Monday: downloads piled up on the one disk the whole site lived on, until
logins stopped sticking.

With the cleaner held back (the cron job that ran too rarely), downloads arrive until
the app refuses them; the core flows (home, login) must keep working because the app
keeps a reserve for them. Then the operator clears the downloads: everything recovers.
"""

import pytest


@pytest.mark.chaos
@pytest.mark.docker
def test_logins_survive_downloads_filling_the_shared_disk(fulldisk_shared_stack):
    site = fulldisk_shared_stack                 # every writable path on one disk
    with site.paused("cleaner"):
        site.downloads(300, ["256KiB"], until_refused=True)
        site.probe("login")
        site.probe("home")
    site.clear("shared")
    site.judge("core_isolation", "recovery")
