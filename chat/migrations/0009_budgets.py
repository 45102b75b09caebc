from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0008_sockets")]

    operations = [
        migrations.CreateModel(
            name="LLMBudget",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("daily_spend_cap_usd", models.DecimalField(
                    blank=True, decimal_places=4, max_digits=12, null=True, verbose_name="daily spend cap (USD)",
                    help_text="What generated answers may cost in a day (TIME_ZONE), all visitors together; 0: no "
                              "cap. Blank: the LLM_DAILY_SPEND_CAP_USD setting.")),
                ("visitor_daily_tokens", models.PositiveIntegerField(
                    blank=True, null=True, verbose_name="tokens per visitor per day",
                    help_text="LLM tokens (prompt and answer) one visitor's answers may use in a day; 0: no limit. "
                              "Blank: the LLM_VISITOR_DAILY_TOKENS setting.")),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name": "LLM budget", "verbose_name_plural": "LLM budget"},
        ),
    ]
