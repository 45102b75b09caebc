from django.shortcuts import get_object_or_404, render

from .models import Document


def document_page(request, pk: int):
    """A readable page for a cited document that has no URL of its own."""
    document = get_object_or_404(Document.objects.select_related("source"), pk=pk)
    return render(request, "knowledge/document.html", {"document": document})
