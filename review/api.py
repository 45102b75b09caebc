"""Review API for staff: the fine-tuning export, streamed as JSONL."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.views import APIView

from knowledge.auth import LockoutBasicAuthentication

from .export import PARTS, jsonl_lines, training_data_build


class TrainingDataQuerySerializer(serializers.Serializer):
    part = serializers.ChoiceField(choices=PARTS, default="train", help_text="which file of the export")
    validation_share = serializers.FloatField(default=0.1, min_value=0, max_value=0.99)
    seed = serializers.IntegerField(default=0)


class TrainingDataView(APIView):
    """Approved answers as OpenAI chat fine-tuning JSONL (`train`, `validation`) or the held-out
    evaluation cases (`eval`), PII-scrubbed and deduplicated; the same split as `export_training_data`."""

    authentication_classes = [SessionAuthentication, LockoutBasicAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[TrainingDataQuerySerializer], responses={(200, "application/jsonl"): OpenApiTypes.STR})
    def get(self, request: Request) -> StreamingHttpResponse:
        query = TrainingDataQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        part = query.validated_data["part"]
        export = training_data_build(
            validation_share=query.validated_data["validation_share"], seed=query.validated_data["seed"]
        )
        response = StreamingHttpResponse(jsonl_lines(lines=export.part(part)), content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="{part}.jsonl"'
        return response
