from django.contrib import admin
from django.urls import include, path

from core.password_reset import password_reset
from dashboard import api, people, views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("risk/", views.risk_page, name="risk"),
    path("risk/what-if/", views.what_if, name="what-if"),
    path("risk/what-if/apply/", views.what_if_apply, name="what-if-apply"),
    path("audit/", views.audit_log, name="audit"),
    path("people/", people.people_list, name="people"),
    path("people/<int:user_id>/roles/", people.people_roles, name="people-roles"),
    path("api/overview", api.overview_poll, name="overview-poll"),
    path("api/fleet-status", api.fleet_status, name="fleet-status"),
    path("api/charts/cpu", api.cpu_chart, name="chart-cpu"),
    path("api/charts/uploads", api.uploads_chart, name="chart-uploads"),
    path("api/charts/bytes", api.bytes_chart, name="chart-bytes"),
    path("api/charts/outcomes", api.outcomes_chart, name="chart-outcomes"),
    path("api/charts/queues", api.queues_chart, name="chart-queues"),
    path("api/charts/partners/<slug:slug>/usage", api.partner_usage_chart, name="chart-partner-usage"),
    path("api/charts/timeline", api.timeline_chart, name="chart-timeline"),
    path("", include("partners.urls")),
    path("", include("monitoring.urls")),
    path("", include("fleet.urls")),
    path("", include("alerting.urls")),
    # Before Django's own: the same view, throttled (core/password_reset.py).
    path("accounts/password_reset/", password_reset, name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

# An unreachable database answers 503 (page or JSON), not a stack trace: see dashboard/errors.py.
handler500 = "dashboard.errors.server_error"
handler403 = "dashboard.errors.permission_denied"
handler404 = "dashboard.errors.page_not_found"
