from django.urls import path

from . import api

urlpatterns = [path("training-data/", api.TrainingDataView.as_view(), name="review-training-data")]
