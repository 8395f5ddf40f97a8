"""Version 1 of the policy: one default rule, so a policy always exists.

Its quorum is the one the deployment configured until now (the WITHDRAWAL_APPROVAL_QUORUM
environment variable, read here once and nowhere else), so upgrading changes no approval.
"""

import os

from django.db import migrations


def default_policy(apps, schema_editor):
    PolicyVersion = apps.get_model("policies", "PolicyVersion")
    Rule = apps.get_model("policies", "Rule")
    if PolicyVersion.objects.exists():
        return
    quorum = max(1, int(os.environ.get("WITHDRAWAL_APPROVAL_QUORUM", "1")))
    hours = max(1, int(os.environ.get("WITHDRAWAL_EXPIRY_HOURS", "72")))
    version = PolicyVersion.objects.create(number=1)
    Rule.objects.create(policy=version, position=1, quorum=quorum, expiry_hours=hours)


class Migration(migrations.Migration):
    dependencies = [("policies", "0001_initial")]

    operations = [migrations.RunPython(default_policy, migrations.RunPython.noop)]
