"""Exversion, Saturday: "I logged in, only it didn't take. No errors."

With the session disk full, a login must either fail loudly (an error status, and a log
line naming the full disk) or stick. It must never redirect as if fine and forget the
user on the next page.
"""

import pytest


@pytest.mark.chaos
@pytest.mark.docker
def test_login_on_a_full_session_disk_is_refused_or_sticks(fulldisk_stack):
    with fulldisk_stack.full("sessions"):        # filled as the app's user, always freed
        fulldisk_stack.probe("login")            # POST /login, then: is the next page logged in?
        fulldisk_stack.log_flood()               # more than a page of log traffic while full
    fulldisk_stack.judge("no_silent_write_loss", "errors_surface")
