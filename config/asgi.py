"""ASGI entry point: HTTP through Django, websockets through the Channels router."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.safety.injection import injection_check  # noqa: E402
from chat.safety.moderation import moderate_offline  # noqa: E402
from chat.safety.pii import pii_warm  # noqa: E402
from config.http_limits import HttpConcurrencyLimit  # noqa: E402
from knowledge.embeddings import configured_spec, embedder_for  # noqa: E402
from knowledge.tokens import count_tokens  # noqa: E402

# Load the embedding model and tokenizer now, not on the first visitor's question.
embedder_for(configured_spec())  # the active space's model is the configured one but while a switch is built
count_tokens("warm up")
pii_warm()  # the NER model and the recognisers (a couple of seconds)
injection_check("warm up")
moderate_offline("warm up")
# Everything loaded so far lives as long as the process: out of the collector's sight, so a full
# collection does not walk it (hundreds of thousands of objects, with the interpreter held and
# every question and token on this process waiting).
gc.freeze()

application = ProtocolTypeRouter(
    {
        "http": HttpConcurrencyLimit(django_asgi_app),
        # The widget runs on other sites: a socket may come from Spotter's own pages (ALLOWED_HOSTS) or
        # from a site on the widget's allow-list; visitors authenticate with a one-use ticket.
        "websocket": OriginValidator(
            URLRouter(websocket_urlpatterns), [*settings.WIDGET_ALLOWED_ORIGINS, *settings.ALLOWED_HOSTS]),
    }
)
