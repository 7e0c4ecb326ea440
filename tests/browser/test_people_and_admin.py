"""Ops make a colleague an engineer on the People page, then read users in the admin: both
pages work under the Content-Security-Policy (the conftest fails a test on any violation)."""

import pytest
from django.contrib.auth.models import User

from core.roles import is_engineer
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_ops_give_a_manager_the_engineer_role_then_read_users_in_the_admin(
    page, live_server, log_in, screenshot, ops_user, manager_a, partner_a
):
    log_in(ops_user.username, PASSWORD)
    page.click("nav >> text=People")
    row = page.locator("tr", has_text="mara-manager-a")
    assert "TheirStory" in row.inner_text()
    row.locator("input[name=engineer]").check()
    row.locator("input[name=reason]").fill("joins the on-call rota")
    row.locator("text=Save").click()
    page.wait_for_selector(".message.success")
    screenshot("people-page")
    assert is_engineer(User.objects.get(pk=manager_a.pk))

    page.click("nav >> text=Admin")
    page.click("text=Users")
    page.click("text=mara-manager-a")
    page.wait_for_selector("#user_form, .readonly, form")
    screenshot("admin-user-read-only")
    assert page.locator("input[name=is_superuser]").count() == 0
