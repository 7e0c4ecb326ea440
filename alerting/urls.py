from django.urls import path

from alerting import views

app_name = "alerting"

urlpatterns = [
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/rules/new/", views.rule_edit, name="rule-new"),
    path("alerts/rules/<int:rule_id>/", views.rule_edit, name="rule-edit"),
    path("alerts/silences/", views.silence_create, name="silence-create"),
    path("alerts/silences/<int:silence_id>/expire/", views.silence_expire, name="silence-expire"),
    path("alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge, name="acknowledge"),
]
