from django.urls import path

from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("api/v1/reports", views.post_report, name="reports"),
    path("api/v1/enrol", views.post_enrol, name="enrol"),
    path("api/v1/deregister", views.post_deregister, name="deregister"),
    path("api/v1/openapi.json", views.openapi, name="openapi"),
    path("servers/", views.server_list, name="servers"),
    path("servers/register/", views.server_register, name="server-register"),
    path("servers/enrolment-secret/", views.enrolment_secret_rotate, name="enrolment-secret"),
    path("servers/<str:name>/token/", views.server_rotate_token, name="server-rotate-token"),
    path("servers/<str:name>/revoke/", views.server_revoke, name="server-revoke"),
]
