from django.conf import settings
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from . import memory
from .models import Conversation, Feedback, Message, VisitorFact, VisitorProfile
from .services import HUMAN_PREFIX


class VisitorSerializer(serializers.Serializer):
    visitor_id = serializers.CharField(read_only=True)
    token = serializers.CharField(read_only=True, help_text="send as the X-Visitor-Token header")
    expires_in = serializers.IntegerField(read_only=True, help_text="seconds the token is good for; refresh it "
                                          "(POST /api/v1/visitors/refresh/) before then")


class TicketSerializer(serializers.Serializer):
    ticket = serializers.CharField(read_only=True, help_text="open /ws/chat/?ticket=<ticket>; good once")
    expires_in = serializers.IntegerField(read_only=True, help_text="seconds the ticket is good for")


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

    def to_representation(self, instance: Message) -> dict:
        data = super().to_representation(instance)
        if instance.status == Message.Status.HELD:  # with a trainer: not the visitor's to read yet
            data.update(text="", sources=[])
        if instance.role == Message.Role.HUMAN:  # a person's reply: their display name, as the frame has it
            data.update(agent=instance.model.removeprefix(HUMAN_PREFIX), model="")
        return data


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


class ProfileFactSerializer(serializers.ModelSerializer):
    title = serializers.SerializerMethodField(help_text="how the label is shown")
    learned_at = serializers.DateTimeField(source="created_at", read_only=True)
    message_id = serializers.UUIDField(read_only=True, allow_null=True,
                                       help_text="the message it was picked from; null: stated in the profile")

    class Meta:
        model = VisitorFact
        fields = ["id", "label", "title", "value", "learned_at", "message_id"]
        read_only_fields = fields

    def get_title(self, fact: VisitorFact) -> str:
        field = memory.profile_config().field(fact.label)
        return field.title if field else fact.label


class ProfileSerializer(serializers.ModelSerializer):
    """What the assistant remembers about the visitor:

        {"language": "de", "updated_at": "...",
         "facts": [{"id": 7, "label": "limits", "title": "Injuries or limits", "value": "I have a bad knee.",
                    "learned_at": "...", "message_id": "<uuid of the message it came from> | null"}],
         "labels": [{"label": "goal", "title": "Goal", "many": false}, ...]}

    `labels` are the ones the visitor may fill in, from the deployment's profile configuration;
    facts picked from messages may also carry the label "note" (free-text self-statements)."""

    facts = ProfileFactSerializer(many=True, read_only=True)
    labels = serializers.SerializerMethodField()

    class Meta:
        model = VisitorProfile
        fields = ["language", "facts", "labels", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(inline_serializer("ProfileLabel", many=True, fields={
        "label": serializers.CharField(), "title": serializers.CharField(),
        "many": serializers.BooleanField(help_text="the label may hold several facts; else a new one replaces it"),
    }))
    def get_labels(self, profile: VisitorProfile) -> list[dict]:
        return profile_labels()


def profile_labels() -> list[dict]:
    return [{"label": f.label, "title": f.title, "many": f.many} for f in memory.profile_config().fields]


class ProfileFactChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, required=False, help_text="a fact to change; leave out for a new one")
    # "label" is the JSON key; DRF's stubs take the attribute for Field.label.
    label = serializers.CharField(max_length=64, required=False, help_text="the label of a new fact")  # type: ignore[assignment]
    value = serializers.CharField(max_length=300, allow_blank=True, help_text="empty: forget the fact")

    def validate(self, item: dict) -> dict:
        if ("id" in item) == ("label" in item):
            raise serializers.ValidationError("Give the id of a fact to change, or the label of a new one.")
        if "label" in item and memory.profile_config().field(item["label"]) is None:
            known = ", ".join(f["label"] for f in profile_labels())
            raise serializers.ValidationError({"label": f"Unknown label; this profile knows: {known}."})
        return item


class ProfileUpdateSerializer(serializers.Serializer):
    """PATCH changes what it names: {"language": "de", "facts": [{"id": 7, "value": "I have a bad right
    knee."}, {"id": 8, "value": ""}, {"label": "goal", "value": "run 10 km"}]} edits fact 7, forgets
    fact 8 and sets the goal. PUT replaces: the facts whose ids it lists are kept (and changed as
    given), new ones are added, every other fact is forgotten and a missing language is cleared."""

    language = serializers.CharField(max_length=16, allow_blank=True, required=False)
    facts = serializers.ListField(child=ProfileFactChangeSerializer(), max_length=50, required=False)
