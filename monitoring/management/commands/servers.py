"""Upload servers by hand: register one, rotate its token, revoke it (monitoring.servers).

    manage.py servers register upload-7 --reason "new fixed host"
    manage.py servers rotate upload-7 --reason "token leaked in a log"
    manage.py servers revoke upload-7 --reason "host retired"

The token of register and rotate is printed once, on stdout alone (so `$(...)` captures it);
only its hash is kept. Audited as the system actor, with who ran the command in the reason.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.commands import audit_reason
from monitoring import servers
from monitoring.models import UploadServer


class Command(BaseCommand):
    help = "Register an upload server, rotate its token or revoke it (audited; a token is printed once)."

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["register", "rotate", "revoke"])
        parser.add_argument("name", help="the upload server's name")
        parser.add_argument("--reason", required=True, help="why: written to the audit log")

    def handle(self, *args, verb: str, name: str, reason: str, **options):
        why = audit_reason(f"servers {verb}", reason)
        if verb == "register":
            try:
                server, token = servers.register_server(None, name, why)
            except ValidationError as error:
                raise CommandError(f"{name} not registered: {'; '.join(error.messages)}") from error
            self.stderr.write(f"Registered {server.name}. Its token, shown this once:")
            self.stdout.write(token)
            return
        server = UploadServer.objects.filter(name=name).first()
        if server is None:
            raise CommandError(f"No upload server named {name}.")
        if verb == "rotate":
            token = servers.rotate_token(server, None, why)
            self.stderr.write(f"New token of {server.name}, shown this once (the old one is refused from now on):")
            self.stdout.write(token)
        elif servers.revoke_server(server, None, why):
            self.stderr.write(f"Revoked {server.name}: its reports are refused from now on.")
        else:
            raise CommandError(f"{server.name} was already revoked; nothing changed.")
