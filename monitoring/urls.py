from django.urls import path

from monitoring import views

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
    path("api/fleet-status", views.fleet_status, name="fleet-status"),
    path("servers/", views.server_list, name="servers"),
    path("servers/register/", views.server_register, name="server-register"),
    path("servers/<str:name>/token/", views.server_rotate_token, name="server-rotate-token"),
    path("servers/<str:name>/revoke/", views.server_revoke, name="server-revoke"),
]
