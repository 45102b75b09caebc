from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import VectorField


class Source(models.Model):
    """Where documents come from: an uploaded or local file, loaded by a Celery task."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    class Format(models.TextChoices):
        TEXT = "text", "plain text"
        MARKDOWN = "markdown", "Markdown"
        HTML = "html", "HTML"
        PDF = "pdf", "PDF"
        CSV = "csv", "CSV (with a field mapping)"
        JSON = "json", "JSON (with a field mapping)"

    name = models.CharField(max_length=200, unique=True)
    uri = models.CharField(max_length=1000, blank=True, help_text="file path or URL it was loaded from")
    file = models.FileField(upload_to="sources/%Y/%m/", blank=True, help_text="the uploaded file, if uploaded")
    format = models.CharField(max_length=16, choices=Format.choices, blank=True)
    mapping = models.JSONField(
        null=True, blank=True, help_text='CSV/JSON only: {"id", "title", "body", "facts", "url", "metadata", "tags"}'
    )
    language = models.CharField(max_length=16, default="en")
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    progress_done = models.PositiveIntegerField(default=0, help_text="documents processed in the current run")
    progress_total = models.PositiveIntegerField(default=0)
    document_count = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    ingested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.READY:
            return 100
        return round(100 * self.progress_done / self.progress_total) if self.progress_total else 0


class Document(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    external_id = models.CharField(max_length=300, help_text="stable id inside its source")
    title = models.CharField(max_length=500)
    url = models.CharField(max_length=1000, blank=True)
    content = models.TextField()
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=16, default="en")
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="document_unique_per_source")
        ]
        indexes = [GinIndex(fields=["tags"], name="document_tags_gin")]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=1000, blank=True, help_text="heading path inside the document")
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    # Title and headings weigh more (A) than the body (B); filled in the transaction that writes the chunk.
    search_vector = SearchVectorField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        indexes = [
            models.Index(fields=["document", "ordinal"], name="chunk_document_ordinal"),
            GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
        ]

    def __str__(self) -> str:
        return f"{self.document.title} #{self.ordinal}"


class EmbeddingSpace(models.Model):
    """One embedding model's vectors. Search reads the active space; a new model builds beside it.

    Vectors of every space share one table; each space gets its own partial HNSW index on
    `vector_expression()` (created by the services), so spaces of different sizes coexist and
    switching is one UPDATE.
    """

    class Status(models.TextChoices):
        BUILDING = "building"
        ACTIVE = "active"
        RETIRED = "retired"

    backend = models.CharField(max_length=16)
    model = models.CharField(max_length=300)
    dimensions = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="active"), name="one_active_space"),
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="building"), name="one_building_space"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.backend}:{self.model} ({self.dimensions}d, {self.status})"

    @property
    def index_name(self) -> str:
        return f"chunk_embedding_hnsw_s{self.pk}"

    def vector_expression(self, alias: str = "") -> str:
        return vector_expression(self.pk, self.dimensions, alias)


def vector_expression(space_id: int, dimensions: int, alias: str = "") -> str:
    """The indexed expression of a space's vectors; queries must repeat it exactly to use the index.

    PostgreSQL computes an index expression before it checks the partial index's WHERE, so a bare
    cast to this space's size would fail on another space's rows; the CASE gives them NULL (which
    HNSW skips) and the outer cast gives the index the fixed size it needs."""
    column = f"{alias}." if alias else ""
    return f"((CASE WHEN {column}space_id = {int(space_id)} THEN {column}embedding END)::vector({int(dimensions)}))"


class ChunkEmbedding(models.Model):
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="+")
    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="embeddings")
    embedding = VectorField()  # no fixed size: the space's partial index casts to its dimensions

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "chunk"], name="chunk_embedding_unique")]

    def __str__(self) -> str:
        return f"chunk {self.chunk_id} in space {self.space_id}"


class KnowledgeBaseVersion(models.Model):
    """A single row whose number changes whenever what search can return changes (cache scope)."""

    version = models.PositiveBigIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    chunks_indexed = models.PositiveIntegerField(default=0, help_text="chunks the lexeme statistics were counted on")

    def __str__(self) -> str:
        return f"knowledge base v{self.version}"


class LexemeStat(models.Model):
    """How many chunks contain each full-text lexeme: the IDF that ranks rare query words above
    common ones (PostgreSQL's own ts_rank has no corpus statistics). Recounted after ingests."""

    lexeme = models.TextField(primary_key=True)
    chunk_count = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.lexeme} ({self.chunk_count} chunks)"
