"""A client generated from the served OpenAPI document works without edits.

Usage: api-client-check.py BASE_URL ADMIN_KEY WORK_DIR (run by scripts/fuzz-api, in its virtual
environment). Generates a Python client with openapi-python-client from BASE_URL/openapi.json,
imports it as generated, and with it creates a subject, reads it back and finds it by e-mail.
Exits non-zero (with what went wrong) on any failure.
"""

import datetime
import importlib
import pathlib
import subprocess
import sys
import uuid


def main() -> None:
    base, admin, work = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    generator = pathlib.Path(sys.executable).with_name("openapi-python-client")
    config = work / "generator.json"
    config.write_text('{"post_hooks": []}')
    run = subprocess.run(
        [str(generator), "generate", "--url", f"{base}/openapi.json", "--config", str(config),
         "--output-path", str(work / "amanah_client"), "--meta", "none", "--overwrite"],
        capture_output=True, text=True,
    )
    print(run.stdout + run.stderr, file=sys.stderr)
    check(run.returncode == 0, "the generator failed")
    # The one operation the generator leaves out: the policy upload, a TOML body (a media type
    # it does not know). Any other warning means the document misleads it.
    skipped = [line for line in run.stdout.splitlines() if line.startswith("WARNING")]
    check(
        skipped in ([], ["WARNING parsing PUT /v1/policy within default. Endpoint will not be generated."]),
        f"the generator skipped parts of the document: {skipped}",
    )
    sys.path.insert(0, str(work))
    client_mod = importlib.import_module("amanah_client")
    models = importlib.import_module("amanah_client.models")
    api = importlib.import_module("amanah_client.api.default")
    create_subject = importlib.import_module(f"{api.__name__}.create_subject")
    read_subject = importlib.import_module(f"{api.__name__}.read_subject")
    search_subjects = importlib.import_module(f"{api.__name__}.search_subjects")

    client = client_mod.AuthenticatedClient(base_url=base, token=admin)
    purpose = models.CreateSubjectPurpose("admission")
    unique = uuid.uuid4().hex[:12]
    email = f"Siti.{unique}@Example.ID"
    body = models.SubjectBody(
        fields=models.SubjectBodyFields(full_name="Siti Rahma", email=email, birth_date=datetime.date(2001, 2, 3))
    )
    created = create_subject.sync_detailed(client=client, purpose=purpose, body=body)
    check(created.status_code == 201, f"create: {created.status_code} {created.content!r}")
    subject_id = created.parsed.id

    read = read_subject.sync_detailed(
        subject_id, client=client, purpose=models.ReadSubjectPurpose("admission")
    )
    check(read.status_code == 200, f"read: {read.status_code} {read.content!r}")
    fields = read.parsed.fields
    check(fields.email == email.lower(), f"read: e-mail {fields.email!r}")
    check(fields.full_name == "Siti Rahma", f"read: name {fields.full_name!r}")

    found = search_subjects.sync_detailed(
        client=client, purpose=models.SearchSubjectsPurpose("admission"), email=email.upper()
    )
    check(found.status_code == 200, f"search: {found.status_code} {found.content!r}")
    ids = [s.id for s in found.parsed.subjects]
    check(ids == [subject_id], f"search by e-mail found {ids}, expected [{subject_id}]")
    print(f"api-client-check: generated client created, read and found subject {subject_id}")


def check(ok: bool, what: str) -> None:
    if not ok:
        sys.exit(f"api-client-check: {what}")


if __name__ == "__main__":
    main()
