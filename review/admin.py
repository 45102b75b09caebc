from django.contrib import admin

from .models import ReviewItem


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["message", "priority", "reason", "status", "created_at"]
    list_filter = ["status", "reason"]
    readonly_fields = ["message", "priority", "reason", "created_at", "reviewed_by", "reviewed_at"]
