from django.urls import path

from . import api, api_privacy

urlpatterns = [
    path("visitors/", api.VisitorCreateView.as_view(), name="visitor-create"),
    path("visitors/refresh/", api.VisitorRefreshView.as_view(), name="visitor-refresh"),
    path("visitors/ticket/", api.TicketView.as_view(), name="visitor-ticket"),
    path("visitors/me/", api_privacy.VisitorMeView.as_view(), name="visitor-me"),
    path("visitors/me/export/", api_privacy.VisitorExportView.as_view(), name="visitor-export"),
    path("widget/config/", api.WidgetConfigView.as_view(), name="widget-config"),
    path("conversations/", api.ConversationCreateView.as_view(), name="conversation-create"),
    path("conversations/<uuid:conversation_id>/", api.ConversationDetailView.as_view(), name="conversation-detail"),
    path("conversations/<uuid:conversation_id>/messages/", api.MessageListView.as_view(), name="message-list"),
    path("conversations/<uuid:conversation_id>/handoff/", api.HandoffView.as_view(), name="conversation-handoff"),
    path("messages/<uuid:message_id>/feedback/", api.FeedbackView.as_view(), name="message-feedback"),
    path("profile/", api.ProfileView.as_view(), name="visitor-profile"),
]
