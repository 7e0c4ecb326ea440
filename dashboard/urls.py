from django.contrib import admin
from django.urls import include, path

from dashboard import fleet_views, risk_views, what_if_views
from dashboard import views as dashboard_views
from partners import views as partner_views

urlpatterns = [
    path("", dashboard_views.overview, name="overview"),
    path("partners/", include("partners.urls")),
    path("controls/", partner_views.controls, name="controls"),
    path("controls/defaults/", partner_views.controls_defaults, name="controls-defaults"),
    path("controls/load/", partner_views.controls_load, name="controls-load"),
    path("controls/pause-all/", partner_views.controls_pause_all, name="controls-pause-all"),
    path("controls/resume-all/", partner_views.controls_resume_all, name="controls-resume-all"),
    path("fleet/", fleet_views.fleet, name="fleet"),
    path("fleet/<slug:name>/scale/", fleet_views.scale, name="fleet-scale"),
    path("fleet/<slug:name>/policy/", fleet_views.policy, name="fleet-policy"),
    path("risk/", risk_views.risk_page, name="risk"),
    path("risk/what-if/", what_if_views.what_if, name="what-if"),
    path("risk/what-if/apply/", what_if_views.what_if_apply, name="what-if-apply"),
    path("audit/", partner_views.audit_log, name="audit"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("monitoring.urls")),
]

# An unreachable database answers 503 (page or JSON), not a stack trace: see dashboard/errors.py.
handler500 = "dashboard.errors.server_error"
