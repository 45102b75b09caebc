from asgiref.sync import async_to_sync
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .embeddings import embed_query_async
from .selectors import chunk_search_dense


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    url = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=4000)
    k = serializers.IntegerField(min_value=1, max_value=50, default=5)


class KnowledgeSearchView(APIView):
    """Top chunks for a query, as the assistant retrieves them."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True), OpenApiParameter("k", int)],
        responses=SearchHitSerializer(many=True),
    )
    def get(self, request):
        query = SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        embedding = async_to_sync(embed_query_async)(query.validated_data["q"])
        hits = chunk_search_dense(embedding=embedding, k=query.validated_data["k"])
        return Response(SearchHitSerializer(hits, many=True).data)
