from django.urls import path

from partners import views

app_name = "partners"

urlpatterns = [
    path("", views.partner_list, name="list"),
    path("new/", views.partner_create, name="create"),
    path("<slug:slug>/", views.partner_detail, name="detail"),
    path("<slug:slug>/limits/", views.partner_limits, name="limits"),
    path("<slug:slug>/settings/", views.partner_settings, name="settings"),
    path("<slug:slug>/shadow/", views.partner_shadow, name="shadow"),
    path("<slug:slug>/pause/", views.partner_pause, name="pause"),
    path("<slug:slug>/resume/", views.partner_resume, name="resume"),
    path("<slug:slug>/overrides/", views.partner_override, name="override"),
    path("<slug:slug>/overrides/<int:override_id>/end/", views.partner_override_end, name="override-end"),
]
