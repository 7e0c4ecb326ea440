"""The admin site: open to ops (by group, with or without is_staff) and to staff accounts.

What each model lets a user do is decided by its ModelAdmin (core/admin.py): ops read most
models, change scaling groups through an audited form, and change no user, group,
permission or django-q schedule or task: those are for superusers only.
"""

from django.contrib import admin

from core import roles


class OpsAdminSite(admin.AdminSite):
    site_header = "Upload Ops administration"

    def has_permission(self, request) -> bool:
        user = request.user
        return user.is_active and (user.is_staff or roles.is_ops(user))
