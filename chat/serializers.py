from django.conf import settings
from rest_framework import serializers

from .models import Conversation, Feedback, Message, VisitorProfile


class VisitorSerializer(serializers.Serializer):
    visitor_id = serializers.CharField(read_only=True)
    token = serializers.CharField(read_only=True, help_text="send as the X-Visitor-Token header")


class ConversationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "channel", "language", "status", "created_at", "updated_at"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id", "sequence", "role", "text", "status", "client_msg_id", "model", "tokens_in", "tokens_out",
            "cost", "cost_avoided", "latency_ms", "ttft_ms", "reuse", "confidence", "sources", "created_at",
            "completed_at",
        ]
        read_only_fields = fields


class MessageCreateSerializer(serializers.Serializer):
    # Length is checked by the pipeline's guard, so REST and websocket give the same error code.
    text = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                 help_text=f"at most {settings.CHAT_MAX_MESSAGE_CHARS} characters")
    client_msg_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class TurnSerializer(serializers.Serializer):
    question = MessageSerializer()
    answer = MessageSerializer()


class FeedbackSerializer(serializers.ModelSerializer):
    class Meta:
        model = Feedback
        fields = ["value", "reason", "comment", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"reason": {"required": False}, "comment": {"required": False}}


class WidgetConfigSerializer(serializers.Serializer):
    offline = serializers.BooleanField()
    max_message_chars = serializers.IntegerField()


class ProfileSerializer(serializers.ModelSerializer):
    facts = serializers.ListField(child=serializers.CharField(max_length=300), max_length=50, required=False)

    class Meta:
        model = VisitorProfile
        fields = ["goal", "level", "equipment", "limits", "language", "facts", "updated_at"]
        read_only_fields = ["updated_at"]
