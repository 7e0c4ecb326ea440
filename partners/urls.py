from django.urls import path

from partners import views

app_name = "partners"

urlpatterns = [
    path("partners/", views.partner_list, name="list"),
    path("partners/new/", views.partner_create, name="create"),
    path("partners/<slug:slug>/", views.partner_detail, name="detail"),
    path("partners/<slug:slug>/limits/", views.partner_limits, name="limits"),
    path("partners/<slug:slug>/settings/", views.partner_settings, name="settings"),
    path("partners/<slug:slug>/shadow/", views.partner_shadow, name="shadow"),
    path("partners/<slug:slug>/pause/", views.partner_pause, name="pause"),
    path("partners/<slug:slug>/resume/", views.partner_resume, name="resume"),
    path("partners/<slug:slug>/overrides/", views.partner_override, name="override"),
    path("partners/<slug:slug>/overrides/<int:override_id>/end/", views.partner_override_end, name="override-end"),
    path("controls/", views.controls, name="controls"),
    path("controls/defaults/", views.controls_defaults, name="controls-defaults"),
    path("controls/load/", views.controls_load, name="controls-load"),
    path("controls/pause-all/", views.controls_pause_all, name="controls-pause-all"),
    path("controls/resume-all/", views.controls_resume_all, name="controls-resume-all"),
]
