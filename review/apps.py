from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"

    def ready(self) -> None:
        from monitoring.signals import topic_sent_to_review

        from .receivers_topics import topic_answers_enqueue

        topic_sent_to_review.connect(topic_answers_enqueue, dispatch_uid="review.topic_answers_enqueue")
