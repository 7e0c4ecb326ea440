from django.urls import path

from fleet import views

app_name = "fleet"

urlpatterns = [
    path("fleet/", views.fleet, name="groups"),
    path("fleet/<slug:name>/scale/", views.scale, name="scale"),
    path("fleet/<slug:name>/policy/", views.policy, name="policy"),
]
