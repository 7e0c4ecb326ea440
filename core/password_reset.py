"""Password reset by email, throttled: ten requests used to send ten emails to ops.

Each request is counted (PasswordResetRequest, in the database so every web process shares
the count). Past PASSWORD_RESET_EMAILS_PER_HOUR for one email address the page says the email
was sent, as always (it never tells whether an address has an account), but none is; past
PASSWORD_RESET_REQUESTS_PER_HOUR from one client address the page answers 429.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.decorators import method_decorator

from core.login_throttle import client_ip
from core.models import PasswordResetRequest

WINDOW = timedelta(hours=1)


def _recent(**match) -> int:
    return PasswordResetRequest.objects.filter(requested_at__gt=timezone.now() - WINDOW, **match).count()


@method_decorator(login_not_required, name="dispatch")
class ThrottledPasswordResetView(auth_views.PasswordResetView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        address = client_ip(request)
        if address and _recent(address=address) >= settings.PASSWORD_RESET_REQUESTS_PER_HOUR:
            response = render(request, "registration/password_reset_throttled.html", status=429)
            response["Retry-After"] = str(int(WINDOW.total_seconds()))
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        email = form.cleaned_data["email"].strip().lower()
        sent_lately = _recent(email=email)
        PasswordResetRequest.objects.create(email=email, address=client_ip(self.request))
        if sent_lately >= settings.PASSWORD_RESET_EMAILS_PER_HOUR:
            # The same answer as a sent email: the page must not tell who has an account.
            return super(auth_views.PasswordResetView, self).form_valid(form)
        return super().form_valid(form)


password_reset = ThrottledPasswordResetView.as_view()
