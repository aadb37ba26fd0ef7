"""The S3 state backend's bucket and lock table: checked before `terraform init`, created by
`gpufleet state bootstrap SPEC`.

Terraform's S3 backend keeps the state in a bucket it cannot create, and `init` against a
missing bucket fails obscurely. So `require` checks first (BadInput naming the field and the
command that fixes it: exit 2, nothing written), and `bootstrap` creates what is missing:

- the bucket, versioned (every state Terraform wrote can be restored), encrypted by default
  (SSE-S3, what the backend's `encrypt = true` writes), all four public access blocks on, and,
  on AWS, a policy that refuses any request not made over TLS;
- with `lock: dynamodb`, the lock table (string hash key `LockID`, on demand, encrypted).

Both are idempotent: what exists is kept and its settings are applied again.

The endpoint rule is the target's, so these calls reach the S3 that Terraform's backend will:
the emulator target's override points the backend at the emulator, and so does `endpoint_for`
(with the emulator's test credentials); the aws target uses AWS through boto3's usual
credential chain and endpoint variables (`AWS_ENDPOINT_URL_S3`, ...), which Terraform reads too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from infra.spec.resolve import ResolvedBackend
from infra.target_names import EMULATOR
from runtime.errors import BadInput, OperationFailed

LOCK_KEY = "LockID"  # the DynamoDB hash key Terraform's S3 backend writes
_MISSING = {"404", "NoSuchBucket", "NotFound"}


@dataclass(frozen=True)
class Endpoint:
    """Where the backend's S3 (and DynamoDB) are: `url` None means AWS itself."""

    url: str | None
    where: str  # in words, for messages

    @property
    def is_emulator(self) -> bool:
        return self.url is not None


def endpoint_for(target: str, emulator_info=None) -> Endpoint:
    """The endpoint a target's Terraform backend uses: the emulator's (its `EmulatorInfo`), or AWS."""
    if target == EMULATOR:
        if emulator_info is None:
            raise ValueError("the emulator target needs the running emulator's info")
        return Endpoint(emulator_info.endpoint, f"the emulator at {emulator_info.endpoint}")
    return Endpoint(None, "AWS")


def _clients(backend: ResolvedBackend, endpoint: Endpoint):
    import boto3

    kwargs: dict = {"region_name": backend.region}
    if endpoint.is_emulator:
        # the credentials the emulator target gives Terraform (moto accepts any); none of the user's
        kwargs.update(endpoint_url=endpoint.url, aws_access_key_id="test", aws_secret_access_key="test",
                      aws_session_token=None)
    session = boto3.session.Session()
    return session.client("s3", **kwargs), session.client("dynamodb", **kwargs)


def _error_code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _call(what: str, endpoint: Endpoint, fn, *args, **kwargs):
    """fn(*args, **kwargs), with credential and connection failures told in the user's terms."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError

    try:
        return fn(*args, **kwargs)
    except NoCredentialsError:
        raise OperationFailed(f"{what}: no AWS credentials found for {endpoint.where} "
                              "(set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)") from None
    except (EndpointConnectionError, NoRegionError) as exc:
        raise OperationFailed(f"{what}: cannot reach {endpoint.where} ({exc})") from None


def _bucket_exists(s3, backend: ResolvedBackend, endpoint: Endpoint) -> bool:
    from botocore.exceptions import ClientError

    try:
        _call("backend.bucket", endpoint, s3.head_bucket, Bucket=backend.bucket)
        return True
    except ClientError as exc:
        code = _error_code(exc)
        if code in _MISSING:
            return False
        if code in ("403", "AccessDenied", "Forbidden"):
            raise OperationFailed(
                f"backend.bucket: {backend.bucket!r} exists in {endpoint.where} but these credentials may not use it "
                "(403): bucket names are global, so it may belong to another account; choose another name, or use "
                "credentials that can read it") from None
        raise


def _table_key(dynamodb, backend: ResolvedBackend, endpoint: Endpoint) -> list | None:
    """The lock table's key schema, or None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        table = _call("backend.dynamodb_table", endpoint, dynamodb.describe_table, TableName=backend.dynamodb_table)
    except ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return table["Table"]["KeySchema"]


def _check_table_key(key_schema: list, backend: ResolvedBackend) -> None:
    if key_schema != [{"AttributeName": LOCK_KEY, "KeyType": "HASH"}]:
        raise BadInput(f"backend.dynamodb_table: {backend.dynamodb_table!r} exists with key schema {key_schema} "
                       f"(allowed: a single string hash key {LOCK_KEY!r}, which Terraform writes locks under)")


def require(backend: ResolvedBackend, endpoint: Endpoint, spec: str = "SPEC") -> None:
    """Raise BadInput (exit 2) unless the state bucket (and lock table) exist at `endpoint`.

    Called before `terraform init`, so a missing bucket writes no state and leaves no
    half-initialised root; the message names the field and `gpufleet state bootstrap {spec}`.
    """
    s3, dynamodb = _clients(backend, endpoint)
    problems = []
    if not _bucket_exists(s3, backend, endpoint):
        problems.append(f"backend.bucket: the state bucket {backend.bucket!r} does not exist in {endpoint.where}; "
                        f"create it with `gpufleet state bootstrap {spec}` (Terraform's S3 backend cannot create it)")
    if backend.lock == "dynamodb":
        key_schema = _table_key(dynamodb, backend, endpoint)
        if key_schema is None:
            problems.append(f"backend.dynamodb_table: the lock table {backend.dynamodb_table!r} does not exist in "
                            f"{endpoint.where}; create it with `gpufleet state bootstrap {spec}`")
        else:
            _check_table_key(key_schema, backend)
    if problems:
        raise BadInput(problems)


def _tls_only_policy(bucket: str) -> str:
    arn = f"arn:aws:s3:::{bucket}"
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]})


def bootstrap(backend: ResolvedBackend, endpoint: Endpoint) -> list[str]:
    """Create the state bucket (and lock table) or bring existing ones to the settings above.

    Returns one line per thing done, for the CLI to print. The TLS-only policy is applied on
    AWS only: moto evaluates a policy's Deny without its aws:SecureTransport condition, so
    there it would refuse every request.
    """
    s3, dynamodb = _clients(backend, endpoint)
    bucket = backend.bucket
    report = []
    if _bucket_exists(s3, backend, endpoint):
        report.append(f"bucket s3://{bucket} exists in {endpoint.where}: kept, settings applied again")
    else:
        kwargs: dict = {"Bucket": bucket}
        if backend.region != "us-east-1":  # S3 refuses a location constraint naming us-east-1
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": backend.region}
        _call("backend.bucket", endpoint, s3.create_bucket, **kwargs)
        s3.get_waiter("bucket_exists").wait(Bucket=bucket)
        report.append(f"bucket s3://{bucket} created in {endpoint.where} ({backend.region})")
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    done = "public access blocked, versioning on, default encryption SSE-S3"
    if not endpoint.is_emulator:
        s3.put_bucket_policy(Bucket=bucket, Policy=_tls_only_policy(bucket))
        done += ", TLS-only policy"
    report.append(f"  {done}")
    if backend.lock == "dynamodb":
        report.append(_ensure_table(dynamodb, backend, endpoint))
    else:
        report.append(f"lock: a lock file beside the state (s3://{bucket}/{backend.key}.tflock; Terraform 1.10+)")
    return report


def _ensure_table(dynamodb, backend: ResolvedBackend, endpoint: Endpoint) -> str:
    table = backend.dynamodb_table
    key_schema = _table_key(dynamodb, backend, endpoint)
    if key_schema is not None:
        _check_table_key(key_schema, backend)
        return f"lock table {table} exists in {endpoint.where}: kept"
    _call("backend.dynamodb_table", endpoint, dynamodb.create_table,
          TableName=table, BillingMode="PAY_PER_REQUEST", SSESpecification={"Enabled": True},
          AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
          KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}])
    dynamodb.get_waiter("table_exists").wait(TableName=table)
    return f"lock table {table} created in {endpoint.where} (hash key {LOCK_KEY}, on demand, encrypted)"
