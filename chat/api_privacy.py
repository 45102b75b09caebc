"""REST API for a visitor's own data: export it all (GET), erase it all (DELETE). Thin over chat/privacy.py."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from . import privacy
from .models import ErasureRecord

ErasureSerializer = inline_serializer("Erasure", {
    "erased": serializers.DictField(child=serializers.IntegerField(), help_text="rows deleted per kind"),
})


class VisitorExportView(APIView):
    """Everything stored about the visitor, as one JSON document (a download)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        response = Response(privacy.visitor_export(visitor_id=request.user.id))
        response["Content-Disposition"] = 'attachment; filename="my-chat-data.json"'
        response["Cache-Control"] = "no-store"
        return response


class VisitorMeView(APIView):
    """Erase everything stored about the visitor; its token stops working (ask for a new visitor)."""

    @extend_schema(request=None, responses={200: ErasureSerializer})
    def delete(self, request):
        record = privacy.visitor_erase(visitor_id=request.user.id, requested_by=ErasureRecord.Requester.VISITOR)
        return Response({"erased": record.counts})
