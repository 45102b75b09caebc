import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0010_roles_budget")]

    operations = [
        migrations.CreateModel(
            name="ContentSafetyPolicy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("injection", models.CharField(blank=True, choices=[("refuse", "refuse the question"), ("reminder", "answer, reminding the model of its instructions"), ("review", "hold the answer for a trainer")], help_text="Blank: the SAFETY_INJECTION_POLICY setting.", max_length=16, verbose_name="suspected prompt injection")),
                ("question_moderation", models.CharField(blank=True, choices=[("refuse", "refuse"), ("review", "hold for a trainer"), ("flag", "allow, and flag it in the review queue")], help_text="Blank: the SAFETY_QUESTION_MODERATION_POLICY setting.", max_length=16, verbose_name="question flagged by moderation")),
                ("answer_moderation", models.CharField(blank=True, choices=[("refuse", "refuse"), ("review", "hold for a trainer"), ("flag", "allow, and flag it in the review queue")], help_text="Blank: the SAFETY_ANSWER_MODERATION_POLICY setting.", max_length=16, verbose_name="answer flagged by moderation")),
                ("injection_threshold", models.FloatField(blank=True, help_text="The detector's probability from which a question is a suspected injection; lower catches more and alarms more. Blank: SAFETY_INJECTION_THRESHOLD, or the trained one.", null=True, validators=[django.core.validators.MinValueValidator(0.01), django.core.validators.MaxValueValidator(0.99)])),
                ("moderation_threshold", models.FloatField(blank=True, help_text="The offline moderation classifier's probability from which text is flagged (OpenAI's endpoint decides for itself). Blank: SAFETY_MODERATION_THRESHOLD, or the trained one.", null=True, validators=[django.core.validators.MinValueValidator(0.01), django.core.validators.MaxValueValidator(0.99)])),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name": "safety policy", "verbose_name_plural": "safety policy"},
        ),
    ]
