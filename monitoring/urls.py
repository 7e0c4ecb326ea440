from django.urls import path

from monitoring import views
from monitoring.alerting import views as alert_views

app_name = "monitoring"

urlpatterns = [
    path("api/v1/reports", views.post_report, name="reports"),
    path("api/v1/openapi.json", views.openapi, name="openapi"),
    path("api/charts/cpu", views.cpu_chart, name="chart-cpu"),
    path("api/charts/uploads", views.uploads_chart, name="chart-uploads"),
    path("api/charts/bytes", views.bytes_chart, name="chart-bytes"),
    path("api/charts/outcomes", views.outcomes_chart, name="chart-outcomes"),
    path("api/charts/queues", views.queues_chart, name="chart-queues"),
    path("api/charts/partners/<slug:slug>/usage", views.partner_usage_chart, name="chart-partner-usage"),
    path("api/charts/timeline", views.timeline_chart, name="chart-timeline"),
    path("api/fleet-status", views.fleet_status, name="fleet-status"),
    path("api/overview", views.overview_poll, name="overview-poll"),
    path("servers/", views.server_list, name="servers"),
    path("servers/register/", views.server_register, name="server-register"),
    path("servers/<str:name>/token/", views.server_rotate_token, name="server-rotate-token"),
    path("servers/<str:name>/revoke/", views.server_revoke, name="server-revoke"),
    path("alerts/", alert_views.alerts, name="alerts"),
    path("alerts/rules/new/", alert_views.rule_edit, name="alert-rule-new"),
    path("alerts/rules/<int:rule_id>/", alert_views.rule_edit, name="alert-rule-edit"),
    path("alerts/silences/", alert_views.silence_create, name="alert-silence-create"),
    path("alerts/silences/<int:silence_id>/expire/", alert_views.silence_expire, name="alert-silence-expire"),
    path("alerts/<int:alert_id>/acknowledge/", alert_views.alert_acknowledge, name="alert-acknowledge"),
]
