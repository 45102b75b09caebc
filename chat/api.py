"""REST API for visitors: thin views over the pipeline, services and selectors."""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from . import memory, pipeline, services
from .guard import GuardError
from .llm.gateway import llm_enabled
from .models import Conversation, Message
from .selectors import conversation_get_for_visitor
from .serializers import (
    ConversationSerializer,
    FeedbackSerializer,
    MessageCreateSerializer,
    MessageSerializer,
    ProfileSerializer,
    ProfileUpdateSerializer,
    TicketSerializer,
    TurnSerializer,
    VisitorSerializer,
    WidgetConfigSerializer,
    profile_labels,
)
from .streams import NullSink, push_frames
from .visitors import ticket_issue, token_max_age, visitor_token_issue


class ApiError(APIException):
    def __init__(self, code: str, message: str, status_code: int) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code


def _own_conversation(request, conversation_id) -> Conversation:
    conversation = conversation_get_for_visitor(visitor_id=request.user.id, conversation_id=conversation_id)
    if conversation is None:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return conversation


class VisitorCreateView(APIView):
    """A new anonymous visitor and its signed token."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=None, responses={201: VisitorSerializer})
    def post(self, request):
        return Response(_token_body(*visitor_token_issue()), status=status.HTTP_201_CREATED)


class VisitorRefreshView(APIView):
    """A new token for the visitor of the current, still valid one (the widget asks at half its lifetime)."""

    @extend_schema(request=None, responses={200: VisitorSerializer})
    def post(self, request):
        return Response(_token_body(*visitor_token_issue(request.user.id)))


def _token_body(visitor_id: str, token: str) -> dict[str, object]:
    return {"visitor_id": visitor_id, "token": token, "expires_in": int(token_max_age().total_seconds())}


class TicketView(APIView):
    """A one-use ticket that opens the websocket: `/ws/chat/?ticket=...` within `expires_in` seconds."""

    @extend_schema(request=None, responses={201: TicketSerializer})
    def post(self, request):
        ticket = ticket_issue(visitor_id=request.user.id)
        return Response({"ticket": ticket, "expires_in": settings.CHAT_TICKET_SECONDS}, status=status.HTTP_201_CREATED)


class WidgetConfigView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses=WidgetConfigSerializer)
    def get(self, request):
        return Response({"offline": not llm_enabled(), "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS})


class ConversationCreateView(APIView):
    @extend_schema(request=None, responses={201: ConversationSerializer})
    def post(self, request):
        conversation = services.conversation_create(visitor_id=request.user.id, channel=Conversation.Channel.API)
        return Response(ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailView(APIView):
    @extend_schema(responses=ConversationSerializer)
    def get(self, request, conversation_id):
        return Response(ConversationSerializer(_own_conversation(request, conversation_id)).data)


class MessageListView(APIView):
    @extend_schema(responses=MessageSerializer(many=True))
    def get(self, request, conversation_id):
        conversation = _own_conversation(request, conversation_id)
        return Response(MessageSerializer(conversation.messages.order_by("sequence"), many=True).data)

    @extend_schema(request=MessageCreateSerializer, responses={201: TurnSerializer})
    def post(self, request, conversation_id):
        """Ask a question and wait for the whole answer (use the websocket to stream it)."""
        conversation = _own_conversation(request, conversation_id)
        body = MessageCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            turn, frame = async_to_sync(pipeline.answer)(
                visitor_id=request.user.id, conversation_id=conversation.pk, text=body.validated_data["text"],
                client_msg_id=body.validated_data["client_msg_id"], channel=Conversation.Channel.API, sink=NullSink(),
            )
        except GuardError as exc:
            raise ApiError(exc.code, str(exc), status.HTTP_400_BAD_REQUEST) from exc
        except pipeline.PersonHolds as held:
            # Stored for the person who holds the conversation: 202, their reply comes as a `human` message.
            question = Message.objects.get(pk=held.question_id)
            handoff = services.handoff_frame(conversation_id=held.conversation_id)
            return Response({"question": MessageSerializer(question).data, "answer": None,
                             "handoff": {k: v for k, v in handoff.items() if k not in ("type", "conversation_id")}},
                            status=status.HTTP_202_ACCEPTED)
        question = Message.objects.get(pk=turn.question_id)
        answer = Message.objects.get(pk=turn.answer_id)
        data = {"question": MessageSerializer(question).data, "answer": MessageSerializer(answer).data}
        if frame.get("type") == "held":
            # Stored, waiting for a trainer (REVIEW_HOLD_BELOW): read it from the messages once it is sent.
            return Response(data, status=status.HTTP_202_ACCEPTED)
        if frame.get("type") == "error":
            # The question is stored; the answer failed. 502: the upstream model let us down.
            return Response({"code": frame["code"], "message": frame["message"], **data}, status=502)
        return Response(data, status=status.HTTP_201_CREATED)


class FeedbackView(APIView):
    @extend_schema(request=FeedbackSerializer, responses={200: FeedbackSerializer})
    def post(self, request, message_id):
        body = FeedbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            feedback = services.feedback_set(visitor_id=request.user.id, message_id=message_id, **body.validated_data)
        except services.NotFound as exc:
            raise NotFound(str(exc), code=exc.code) from exc
        return Response(FeedbackSerializer(feedback).data)


class HandoffView(APIView):
    @extend_schema(request=None, responses=ConversationSerializer)
    def post(self, request, conversation_id):
        conversation = _own_conversation(request, conversation_id)
        services.conversation_handoff(conversation=conversation)
        frame = services.handoff_frame(conversation_id=conversation.pk)
        transaction.on_commit(lambda: push_frames(conversation_id=conversation.pk, frames=[frame]))  # open widgets
        conversation.refresh_from_db()
        return Response(ConversationSerializer(conversation).data)




class ProfileView(APIView):
    """What the assistant remembers about the visitor: see it, correct it, delete it."""

    @extend_schema(responses=ProfileSerializer)
    def get(self, request):
        profile = memory.profile_get(visitor_id=request.user.id)
        return Response(ProfileSerializer(profile).data if profile else {**_EMPTY_PROFILE, "labels": profile_labels()})

    @extend_schema(request=ProfileUpdateSerializer, responses=ProfileSerializer)
    def put(self, request):
        return self._update(request, replace=True)

    @extend_schema(request=ProfileUpdateSerializer, responses=ProfileSerializer)
    def patch(self, request):
        return self._update(request, replace=False)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        memory.profile_delete(visitor_id=request.user.id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request, replace: bool):
        body = ProfileUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            profile = memory.profile_update(visitor_id=request.user.id, data=body.validated_data, replace=replace)
        except memory.ProfileError as error:
            raise ValidationError({error.field: [str(error)]}) from error
        return Response(ProfileSerializer(profile).data)


_EMPTY_PROFILE: dict[str, object] = {"language": "", "facts": [], "updated_at": None}
