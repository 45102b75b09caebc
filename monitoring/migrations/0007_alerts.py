import django.contrib.postgres.fields
import django.core.serializers.json
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0006_drift"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertChannel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('kind', models.CharField(choices=[('email', 'E-mail'), ('webhook', 'Webhook')], max_length=16)),
                ('recipients', models.TextField(blank=True, help_text='e-mail: addresses, one a line or separated by commas')),
                ('url', models.URLField(blank=True, help_text='webhook: receives a JSON POST', max_length=500)),
                ('secret', models.CharField(blank=True, help_text='webhook: signs each body, header X-Spotter-Signature: sha256=<HMAC-SHA256 of the body>', max_length=200)),
                ('enabled', models.BooleanField(default=True)),
                ('min_severity', models.CharField(choices=[('info', 'Info'), ('warning', 'Warning'), ('critical', 'Critical')], default='warning', max_length=16)),
                ('kinds', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[('drift', 'Drift'), ('anomaly', 'Anomaly'), ('breaker_open', 'LLM breaker open'), ('review_queue_wait', 'Review queue waiting'), ('cost_budget', 'Daily cost over budget'), ('experiment_guardrail', 'Experiment arm paused by a guardrail'), ('test', 'Test (sent from admin)')], max_length=32), blank=True, default=list, help_text='only alerts of these kinds; none ticked: every kind', size=None)),
            ],
        ),
        migrations.CreateModel(
            name='Alert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(help_text='what makes two raises the same alert', max_length=200)),
                ('kind', models.CharField(choices=[('drift', 'Drift'), ('anomaly', 'Anomaly'), ('breaker_open', 'LLM breaker open'), ('review_queue_wait', 'Review queue waiting'), ('cost_budget', 'Daily cost over budget'), ('experiment_guardrail', 'Experiment arm paused by a guardrail'), ('test', 'Test (sent from admin)')], max_length=32)),
                ('severity', models.CharField(choices=[('info', 'Info'), ('warning', 'Warning'), ('critical', 'Critical')], max_length=16)),
                ('status', models.CharField(choices=[('open', 'Open'), ('acknowledged', 'Acknowledged'), ('resolved', 'Resolved')], default='open', max_length=16)),
                ('title', models.CharField(max_length=300)),
                ('detail', models.TextField(blank=True)),
                ('data', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('count', models.PositiveIntegerField(default=1, help_text='times raised while it lasted')),
                ('first_seen', models.DateTimeField()),
                ('last_seen', models.DateTimeField()),
                ('delivered_at', models.DateTimeField(blank=True, help_text='when it was handed to the channels', null=True)),
                ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('resolved_by', models.ForeignKey(blank=True, help_text='empty when the condition went away by itself', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.CreateModel(
            name='AlertDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('attempt', models.PositiveSmallIntegerField()),
                ('at', models.DateTimeField()),
                ('ok', models.BooleanField()),
                ('status_code', models.PositiveSmallIntegerField(blank=True, help_text='webhook: the HTTP answer', null=True)),
                ('error', models.TextField(blank=True)),
                ('duration_ms', models.PositiveIntegerField()),
                ('alert', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='monitoring.alert')),
                ('channel', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='deliveries', to='monitoring.alertchannel')),
            ],
            options={
                'verbose_name_plural': 'alert deliveries',
            },
        ),
        migrations.AddIndex(
            model_name='alert',
            index=models.Index(fields=['status', '-last_seen'], name='alert_status_last_seen'),
        ),
        migrations.AddConstraint(
            model_name='alert',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'resolved'), _negated=True), fields=('key',), name='alert_one_live_per_key'),
        ),
        migrations.AddIndex(
            model_name='alertdelivery',
            index=models.Index(fields=['alert', 'at'], name='alert_delivery_alert_at'),
        ),
    ]
